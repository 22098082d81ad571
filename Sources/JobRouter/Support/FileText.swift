#if canImport(Glibc)
import Glibc
#endif

/// Reads a whole text file with the operating system's own words for what went wrong ("No such
/// file or directory", "Permission denied"), without Foundation.
enum FileText {
    /// Why a read failed, as `strerror` says it (or that the bytes are not UTF-8).
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The file's text, or why it cannot be read.
    static func read(_ path: String) -> Result<String, Failure> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(Failure(description: String(cString: strerror(errno)))) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(Failure(description: String(cString: strerror(errno))))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(Failure(description: "not UTF-8 text"))
        }
        return .success(text)
    }
}
