import Foundation

/// This process's memory, CPU time and start time, read from Linux's /proc.
struct ProcessStatistics: Equatable {
    /// Resident set size.
    var residentBytes: Int
    /// User plus system CPU time.
    var cpuSeconds: Double
    /// When the process started, in seconds since the epoch.
    var startTime: Double

    /// Reads them; `nil` when /proc is not there or not as expected.
    static func read() -> ProcessStatistics? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8)
        else { return nil }
        return parse(stat: stat, statm: statm, system: system, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))),
                     pageSize: Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    /// The figures from the files' text (pure, for tests). The command name in `stat` may hold
    /// spaces and parentheses, so fields are counted from the last `)`.
    static func parse(stat: String, statm: String, system: String, ticksPerSecond: Double, pageSize: Int) -> ProcessStatistics? {
        guard ticksPerSecond > 0, let close = stat.lastIndex(of: ")") else { return nil }
        // After ") ": field 3 (state) is index 0, so field N is index N - 3.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let utime = Double(fields[11]), let stime = Double(fields[12]), let start = Double(fields[19]),
              let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Int($0) }),
              let bootLine = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Double(bootLine.dropFirst(6).trimmingCharacters(in: .whitespaces))
        else { return nil }
        return ProcessStatistics(residentBytes: pages * pageSize, cpuSeconds: (utime + stime) / ticksPerSecond,
                                 startTime: boot + start / ticksPerSecond)
    }
}
