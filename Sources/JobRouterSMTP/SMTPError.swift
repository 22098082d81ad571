/// A mail that was not accepted, with libcurl's message and the server's last reply.
/// Never carries a password (libcurl's messages do not, and the URL is not included).
public struct SMTPError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The SMTP reply code, when the server answered (0 otherwise).
    public var replyCode: Int
    /// The server's last reply line (`550 5.1.1 no such user`), or libcurl's message.
    public var message: String
    /// `true` for 5xx replies: sending again cannot help.
    public var permanent: Bool { (500...599).contains(replyCode) }

    /// Makes an error.
    public init(replyCode: Int, message: String) {
        self.replyCode = replyCode
        self.message = message
    }

    public var description: String { replyCode > 0 ? "SMTP \(replyCode): \(message)" : "SMTP: \(message)" }
}
