import Foundation

/// This process's memory and CPU time, read from Linux's /proc on each scrape, and its start
/// time, read once.
struct ProcessStatistics: Equatable {
    /// Resident set size.
    var residentBytes: Int
    /// User plus system CPU time.
    var cpuSeconds: Double

    /// Reads them; `nil` when /proc is not there or not as expected.
    static func read() -> ProcessStatistics? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)
        else { return nil }
        return parse(stat: stat, statm: statm, ticksPerSecond: ticksPerSecond, pageSize: Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    /// When this process started, in seconds since the epoch; `nil` when /proc does not say.
    /// (/proc/stat is long: it is read once, not per scrape.)
    static func startTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8)
        else { return nil }
        return startTime(stat: stat, system: system, ticksPerSecond: ticksPerSecond)
    }

    private static var ticksPerSecond: Double { Double(sysconf(Int32(_SC_CLK_TCK))) }

    /// The fields of `stat` after the command name, which may hold spaces and parentheses (so
    /// they are counted from the last `)`): field N of proc(5) is at index N - 3.
    private static func fields(_ stat: String) -> [Substring]? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// The figures from the files' text (pure, for tests).
    static func parse(stat: String, statm: String, ticksPerSecond: Double, pageSize: Int) -> ProcessStatistics? {
        guard ticksPerSecond > 0, let fields = fields(stat), fields.count > 12,
              let utime = Double(fields[11]), let stime = Double(fields[12]),
              let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return ProcessStatistics(residentBytes: pages * pageSize, cpuSeconds: (utime + stime) / ticksPerSecond)
    }

    /// The start time from `stat` (field 22, in clock ticks after boot) and /proc/stat's `btime` (pure, for tests).
    static func startTime(stat: String, system: String, ticksPerSecond: Double) -> Double? {
        guard ticksPerSecond > 0, let fields = fields(stat), fields.count > 19, let start = Double(fields[19]),
              let bootLine = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Double(bootLine.dropFirst(6).trimmingCharacters(in: .whitespaces))
        else { return nil }
        return boot + start / ticksPerSecond
    }
}
