import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Time zones by IANA name (`Europe/Berlin`), for `[schedules.NAME] timezone`.
///
/// FoundationEssentials alone knows only GMT: named zones come from FoundationInternationalization
/// (ICU), which FoundationEssentials finds at run time once it is loaded. This module does not link
/// it, so a worker whose schedules name no zone never maps ICU (about 2 MB of its memory); the first
/// name that needs it loads it, from where the process found FoundationEssentials. A process that
/// imports Foundation has it already.
enum NamedTimeZone {
    /// Why named zones are not available in this process.
    struct Unavailable: Error, CustomStringConvertible {
        /// What the loader said, or why nothing was tried.
        var description: String
    }

    /// The zone named `identifier`, or `nil` when no zone has that name. UTC (`UTC`, `Etc/UTC`,
    /// `GMT`) needs no ICU.
    static func named(_ identifier: String) throws(Unavailable) -> TimeZone? {
        if ["UTC", "Etc/UTC", "GMT", "Etc/GMT"].contains(identifier) { return CronSchedule.utc }
        if let zone = TimeZone(identifier: identifier) { return zone }
        if let failure = internationalizationMissing { throw failure }
        return TimeZone(identifier: identifier)
    }

    private static let library = "libFoundationInternationalization.so"

    /// `nil` once FoundationInternationalization is loaded (loaded here the first time it is
    /// needed), else why it could not be. Its handle is never closed: FoundationEssentials keeps
    /// using the zones it made.
    private static let internationalizationMissing: Unavailable? = {
        if dlopen(library, RTLD_NOW | RTLD_NOLOAD) != nil { return nil }
        // Only beside a shared FoundationEssentials: with the Swift runtime linked statically, a
        // second copy of it would load with this library.
        guard let essentials = sharedEssentialsDirectory() else {
            return Unavailable(description: "FoundationEssentials is not a shared library in this process; import Foundation to name time zones")
        }
        if dlopen(library, RTLD_NOW | RTLD_GLOBAL) != nil { return nil }
        if dlopen(essentials + library, RTLD_NOW | RTLD_GLOBAL) != nil { return nil }
        return Unavailable(description: dlerror().map { String(cString: $0) } ?? "\(essentials + library) did not load")
    }()

    /// The directory (with its trailing `/`) of the process's `libFoundationEssentials.so`, from
    /// `/proc/self/maps`; `nil` when it is not mapped as a shared library.
    private static func sharedEssentialsDirectory() -> String? {
        guard case .success(let maps) = FileText.read("/proc/self/maps") else { return nil }
        let file = "/libFoundationEssentials.so"
        for line in maps.split(separator: "\n") where line.hasSuffix(file) {
            guard let start = line.firstIndex(of: "/") else { continue }
            return String(line[start...].dropLast(file.count - 1))
        }
        return nil
    }
}
