import CCurl
import Foundation
import JobRouter

/// What a transport needs to connect: the `[smtp]` settings with the credentials already read from
/// the environment.
public struct SMTPEndpoint: Sendable, CustomStringConvertible {
    /// `smtp://` or `smtps://` URL.
    public var url: String
    /// STARTTLS policy for `smtp://`.
    public var tls: SMTPSettings.TLS
    /// User name, when the server wants one.
    public var username: String?
    /// Password, when the server wants one. Never logged.
    public var password: String?
    /// Bound on connecting and on each exchange.
    public var timeout: Duration
    /// Keep the connection open between mails (`false`: a new connection per mail, for relays that want it).
    public var reuseConnections: Bool
    /// PEM bundle of trusted CAs (`ca_file`), or `nil` for the system store.
    public var caFile: String?
    /// Check the relay's certificate and name.
    public var tlsVerify: Bool
    /// The SASL mechanism to use, or `nil` for libcurl's choice.
    public var authMechanism: String?

    /// The URL and TLS policy; never the credentials.
    public var description: String {
        "\(url) (tls \(tls.rawValue)\(username == nil ? "" : ", with credentials"))"
    }

    /// Reads the credentials from `environment` through the variable names the settings give;
    /// `JOBROUTER_SMTP_URL` there replaces the URL.
    public init(settings: SMTPSettings, environment: [String: String] = ProcessInfo.processInfo.environment) {
        url = environment["JOBROUTER_SMTP_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? settings.url
        reuseConnections = settings.reuseConnections
        tls = settings.tls
        username = settings.usernameEnvironment.flatMap { environment[$0] }
        password = settings.passwordEnvironment.flatMap { environment[$0] }
        timeout = settings.timeout
        caFile = settings.caFile
        tlsVerify = settings.tlsVerify
        authMechanism = settings.authMechanism
    }
}

/// One libcurl easy handle used for SMTP. It keeps its connection open between mails, so a worker
/// slot sends many mails over one connection (and reconnects by itself when the server closed it).
///
/// Blocking and not `Sendable`: it lives on one dedicated thread.
public final class SMTPTransport {
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let transfer = Transfer()
    private var recipients: UnsafeMutablePointer<curl_slist>?

    /// Every new connection this handle has opened.
    public private(set) var connectionsOpened = 0

    private static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    /// Prepares a handle; nothing connects until the first ``send(_:)``.
    public init(endpoint: SMTPEndpoint) throws(SMTPError) {
        guard Self.globalInit == CURLE_OK, let handle = curl_easy_init() else {
            throw SMTPError(replyCode: 0, message: "libcurl could not start")
        }
        self.handle = handle
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let tlsLevel: Int = switch endpoint.tls {
        case .required: Int(CURLUSESSL_ALL.rawValue)
        case .opportunistic: Int(CURLUSESSL_TRY.rawValue)
        case .off: Int(CURLUSESSL_NONE.rawValue)
        }
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        var status = jr_curl_setopt_string(handle, CURLOPT_URL, endpoint.url)
        func also(_ code: CURLcode) { if status == CURLE_OK { status = code } }
        also(jr_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        also(jr_curl_setopt_long(handle, CURLOPT_USE_SSL, tlsLevel))
        also(jr_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        if !endpoint.reuseConnections { also(jr_curl_setopt_long(handle, CURLOPT_FORBID_REUSE, 1)) }
        also(jr_curl_setopt_long(handle, CURLOPT_UPLOAD, 1))
        also(jr_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(endpoint.timeout.inMilliseconds)))
        also(jr_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(endpoint.timeout.inMilliseconds)))
        also(jr_curl_setopt_read_function(handle, readCallback))
        also(jr_curl_setopt_pointer(handle, CURLOPT_READDATA, context))
        // The debug stream is the only place libcurl shows the server's reply text.
        also(jr_curl_setopt_long(handle, CURLOPT_VERBOSE, 1))
        also(jr_curl_setopt_debug_function(handle, debugCallback))
        also(jr_curl_setopt_pointer(handle, CURLOPT_DEBUGDATA, context))
        if let mechanism = endpoint.authMechanism { also(jr_curl_setopt_string(handle, CURLOPT_LOGIN_OPTIONS, "AUTH=\(mechanism)")) }
        if let caFile = endpoint.caFile { also(jr_curl_setopt_string(handle, CURLOPT_CAINFO, caFile)) }
        if !endpoint.tlsVerify {
            also(jr_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 0))
            also(jr_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 0))
        }
        if let username = endpoint.username { also(jr_curl_setopt_string(handle, CURLOPT_USERNAME, username)) }
        if let password = endpoint.password { also(jr_curl_setopt_string(handle, CURLOPT_PASSWORD, password)) }
        if status != CURLE_OK {
            let message = String(cString: curl_easy_strerror(status))
            curl_easy_cleanup(handle)
            errorBuffer.deallocate()
            throw SMTPError(replyCode: 0, message: "cannot configure libcurl: \(message)")
        }
    }

    deinit {
        curl_easy_cleanup(handle)
        if let recipients { curl_slist_free_all(recipients) }
        errorBuffer.deallocate()
    }

    /// Sends one message over the open connection (or a new one). Throws with the server's reply.
    public func send(_ message: MailMessage) throws(SMTPError) {
        if let recipients { curl_slist_free_all(recipients) }
        recipients = nil
        for recipient in message.recipients { recipients = curl_slist_append(recipients, "<\(recipient)>") }
        transfer.reset(Array(message.data))
        errorBuffer[0] = 0
        var status = jr_curl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(message.sender)>")
        if status == CURLE_OK { status = jr_curl_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipients) }
        if status == CURLE_OK { status = jr_curl_setopt_long(handle, CURLOPT_INFILESIZE, message.data.count) }
        if status == CURLE_OK { status = curl_easy_perform(handle) }
        var connects = 0
        _ = jr_curl_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &connects)
        connectionsOpened += connects
        guard status != CURLE_OK else { return }
        var code = 0
        _ = jr_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        if (400...599).contains(code), let reply = transfer.lastReply {
            throw SMTPError(replyCode: code, message: reply)
        }
        let detail = String(cString: errorBuffer)
        throw SMTPError(replyCode: (400...599).contains(code) ? code : 0,
                        message: detail.isEmpty ? String(cString: curl_easy_strerror(status)) : detail)
    }
}

@available(*, unavailable)
extension SMTPTransport: Sendable {}

/// The bytes being uploaded and the server's replies, reached from libcurl's C callbacks.
private final class Transfer {
    var bytes: [UInt8] = []
    var offset = 0
    var lastReply: String?

    func reset(_ bytes: [UInt8]) {
        self.bytes = bytes
        offset = 0
        lastReply = nil
    }
}

private let readCallback: jr_curl_read_callback = { buffer, size, count, context in
    guard let buffer, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let length = min(size * count, transfer.bytes.count - transfer.offset)
    guard length > 0 else { return 0 }
    transfer.bytes.withUnsafeBytes { bytes in
        UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + transfer.offset, byteCount: length)
    }
    transfer.offset += length
    return length
}

private let debugCallback: jr_curl_debug_callback = { _, type, data, size, context in
    guard type == CURLINFO_HEADER_IN, let data, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    // Keep the last failing reply: after a failure libcurl still reads the reply to QUIT.
    for line in text.split(whereSeparator: \.isNewline) {
        if let code = Int(line.prefix(3)), code >= 400 { transfer.lastReply = String(line) }
    }
    return 0
}
