import Foundation
import JobRouter
import Synchronization

/// Who may use the dashboard, and the checks every request passes.
///
/// - Loopback by default; any other listen address is refused unless a token is set
///   (`JOBROUTER_WEB_TOKEN`), which every request must then carry: a session cookie from the login
///   form (`HttpOnly; SameSite=Strict`) or `Authorization: Bearer <token>`.
/// - Every state change is a POST carrying this process's CSRF token; nothing changes on a GET.
/// - The token is never logged, echoed or put in a page.
public final class WebAccess: Sendable {
    /// The token required, or `nil` on loopback without one.
    private let token: String?
    /// The value every form carries, checked on every POST.
    public let csrfToken: String
    private let sessions = Mutex<Set<String>>([])

    /// The cookie a login sets.
    static let sessionCookie = "jobrouter_session"

    /// Access for a dashboard on `listen`; throws when it is not loopback and no token is given.
    public init(listen: HTTPListenAddress, token: String?) throws(WebError) {
        let token = token.flatMap { $0.isEmpty ? nil : $0 }
        if token == nil, !Self.isLoopback(listen.host) {
            throw WebError(message: "web: refusing to listen on \(listen) without JOBROUTER_WEB_TOKEN: the dashboard retries and deletes jobs; set the token, or listen on 127.0.0.1")
        }
        self.token = token
        self.csrfToken = Self.randomToken()
    }

    /// Whether a token is required.
    public var requiresLogin: Bool { token != nil }

    /// `127.0.0.0/8`, `::1` and `localhost`.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Without a token, whether the request's `Host` names this machine's loopback: a page on
    /// another site whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name and
    /// is refused, so it cannot read the dashboard. With a token every request is signed in anyway.
    func acceptsHost(_ host: String?) -> Bool {
        guard token == nil else { return true }
        guard let host else { return false }
        var name = Substring(host)
        if name.hasPrefix("[") {
            name = name.dropFirst().prefix(while: { $0 != "]" })
        } else if let colon = name.lastIndex(of: ":") {
            name = name[..<colon]
        }
        return Self.isLoopback(String(name).lowercased())
    }

    /// Whether a request with these credentials may see the dashboard.
    func admits(authorization: String?, cookie: String?) -> Bool {
        guard let token else { return true }
        if let authorization, authorization.hasPrefix("Bearer "), Self.same(String(authorization.dropFirst(7)), token) { return true }
        guard let session = cookie.flatMap(Self.session(in:)) else { return false }
        return sessions.withLock { $0.contains(session) }
    }

    /// A new session when `candidate` is the token, else `nil`.
    func logIn(candidate: String) -> String? {
        guard let token, Self.same(candidate, token) else { return nil }
        let session = Self.randomToken()
        sessions.withLock { _ = $0.insert(session) }
        return session
    }

    /// Whether a form's CSRF field is this process's token.
    func acceptsForm(csrf: String?) -> Bool {
        guard let csrf else { return false }
        return Self.same(csrf, csrfToken)
    }

    /// The session id in a `Cookie` header.
    static func session(in cookie: String) -> String? {
        for part in cookie.split(separator: ";") {
            let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if pair.count == 2, pair[0] == sessionCookie { return String(pair[1]) }
        }
        return nil
    }

    /// Compares without stopping at the first difference.
    static func same(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }

    /// 32 random bytes as hex.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined()
    }
}

/// Something the dashboard refuses, in one line.
public struct WebError: Error, CustomStringConvertible, Sendable {
    /// What is wrong.
    public var message: String
    public var description: String { message }
}
