import FoundationEssentials

/// A cron expression: when a schedule fires.
///
/// Five fields, `minute hour day-of-month month day-of-week`, each `*`, a value, a range `a-b`, a
/// step `*/n`, `a-b/n` or `a/n`, or a comma-separated list of those; months and weekdays also by
/// name (`jan`…`dec`, `sun`…`sat`; weekday 7 is Sunday too). `@yearly` (`@annually`), `@monthly`,
/// `@weekly`, `@daily` (`@midnight`) and `@hourly` stand for the usual expressions. A sixth field in
/// front gives seconds (`*/10 * * * * *`: every 10 s). When both day fields are restricted a day
/// matches either, as in Vixie cron.
///
/// Times are wall-clock times in a time zone (``nextFire(after:in:)``):
/// - a time that a daylight-saving change skips (02:30 on a spring-forward night in Europe) fires
///   once, at the instant the change happens (03:00 local);
/// - a time that occurs twice (02:30 on a fall-back night) fires once, at its first occurrence.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// The expression as written.
    public let text: String
    private let seconds: UInt64
    private let minutes: UInt64
    private let hours: UInt64
    private let days: UInt64
    private let months: UInt64
    private let weekdays: UInt64
    /// Whether the day-of-month / day-of-week field was restricted (not starting with `*`).
    private let daysRestricted: Bool
    private let weekdaysRestricted: Bool

    public var description: String { text }

    private static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let weekdayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// Parses `text`; the error names the field and what is wrong with it.
    public init(parsing text: String) throws(CronError) {
        self.text = text
        let trimmed = text.trimmingBlanks()
        var source = trimmed
        if trimmed.hasPrefix("@") {
            guard let expanded = Self.macros[trimmed.lowercased()] else {
                throw CronError(message: "unknown macro '\(trimmed)'; one of \(Self.macros.keys.sorted().joined(separator: ", "))")
            }
            source = expanded
        }
        var fields = source.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw CronError(message: "\(fields.count) field(s); a cron expression has 5 (minute hour day-of-month month day-of-week), or 6 with seconds first")
        }
        if fields.count == 5 { fields.insert("0", at: 0) }
        seconds = try Self.field(fields[0], name: "second", range: 0...59)
        minutes = try Self.field(fields[1], name: "minute", range: 0...59)
        hours = try Self.field(fields[2], name: "hour", range: 0...23)
        days = try Self.field(fields[3], name: "day-of-month", range: 1...31)
        months = try Self.field(fields[4], name: "month", range: 1...12, names: Self.monthNames, firstName: 1)
        var weekdays = try Self.field(fields[5], name: "day-of-week", range: 0...7, names: Self.weekdayNames, firstName: 0)
        if weekdays & (1 << 7) != 0 { weekdays = (weekdays | 1) & ~(1 << 7) }
        self.weekdays = weekdays
        daysRestricted = !fields[3].hasPrefix("*")
        weekdaysRestricted = !fields[5].hasPrefix("*")
        if daysRestricted && !weekdaysRestricted {
            // A day that no month has (Feb 30 only, 31 in months of 30) never fires: refuse it here.
            let longest = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            let possible = (1...12).contains { month in
                months & (1 << month) != 0 && (1...longest[month - 1]).contains { days & (1 << $0) != 0 }
            }
            if !possible { throw CronError(message: "day-of-month: no month selected has that day; it would never fire") }
        }
    }

    private static func field(_ text: String, name: String, range: ClosedRange<Int>, names: [String] = [],
                              firstName: Int = 0) throws(CronError) -> UInt64 {
        func value(_ token: Substring) throws(CronError) -> Int {
            if let number = Int(token) {
                guard range.contains(number) else {
                    throw CronError(message: "\(name): \(number) is out of range \(range.lowerBound)-\(range.upperBound)")
                }
                return number
            }
            if let index = names.firstIndex(of: token.lowercased()) { return index + firstName }
            throw CronError(message: "\(name): '\(token)' is not a number\(names.isEmpty ? "" : " or a name (\(names.joined(separator: ",")))")")
        }
        var mask: UInt64 = 0
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw CronError(message: "\(name): empty item in '\(text)'") }
            var span = part
            var step = 1
            if let slash = part.firstIndex(of: "/") {
                span = part[..<slash]
                guard let parsed = Int(part[part.index(after: slash)...]), parsed > 0 else {
                    throw CronError(message: "\(name): step in '\(part)' must be a positive number")
                }
                step = parsed
            }
            var low = range.lowerBound
            var high = range.upperBound
            if span == "*" {
                // all of the range
            } else if let dash = span.firstIndex(of: "-") {
                low = try value(span[..<dash])
                high = try value(span[span.index(after: dash)...])
                guard low <= high else { throw CronError(message: "\(name): range '\(span)' goes backwards") }
            } else {
                low = try value(span)
                // `a/n` runs from a to the end of the range; a lone value is just itself.
                high = part.contains("/") ? range.upperBound : low
            }
            for item in stride(from: low, through: high, by: step) { mask |= 1 << UInt64(item) }
        }
        return mask
    }

    /// The first fire time strictly after `date`, in `zone`; `nil` when none comes within 5 years.
    public func nextFire(after date: Date, in zone: TimeZone = .gmt) -> Date? {
        let instant = Int64((date.timeIntervalSince1970).rounded(.down))
        var wall = instant + Int64(zone.secondsFromGMT(for: date)) + 1
        let limit = wall + 5 * 366 * 86_400
        while wall < limit {
            let days = Self.floorDivide(wall, 86_400)
            var secondOfDay = wall - days * 86_400
            let (year, month, day) = Self.civil(days: days)
            if months & (1 << UInt64(month)) == 0 {
                // The first day of the next month.
                let (nextYear, nextMonth) = month == 12 ? (year + 1, 1) : (year, month + 1)
                wall = Self.days(year: nextYear, month: nextMonth, day: 1) * 86_400
                continue
            }
            if !dayMatches(day: day, weekday: Self.weekday(days: days)) {
                wall = (days + 1) * 86_400
                continue
            }
            let hour = secondOfDay / 3600
            if hours & (1 << UInt64(hour)) == 0 {
                wall = days * 86_400 + (hour + 1) * 3600
                continue
            }
            let minute = (secondOfDay % 3600) / 60
            if minutes & (1 << UInt64(minute)) == 0 {
                wall = days * 86_400 + hour * 3600 + (minute + 1) * 60
                continue
            }
            secondOfDay %= 60
            if seconds & (1 << UInt64(secondOfDay)) == 0 {
                wall += 1
                continue
            }
            // A matching wall-clock time: the instant it names (the first of two in a repeated
            // hour; the change itself in a skipped one), if that is still after `date`.
            if let fire = Self.instant(wall: wall, zone: zone), fire > instant {
                return Date(timeIntervalSince1970: TimeInterval(fire))
            }
            wall += 1
        }
        return nil
    }

    /// The latest fire time in `(after, through]`, or `nil` when none falls in it.
    ///
    /// Looks back in growing windows (a minute, an hour, a day, a month, a year, five years), so a
    /// long `catch_up` on a frequent schedule costs no more than the ticks of the first window that
    /// holds one.
    public func latestFire(after start: Date, through end: Date, in zone: TimeZone = .gmt) -> Date? {
        let windows: [TimeInterval] = [60, 3600, 86_400, 31 * 86_400, 366 * 86_400, 5 * 366 * 86_400]
        for window in windows {
            let from = max(start, end.addingTimeInterval(-window))
            var latest: Date?
            var cursor = from
            while let next = nextFire(after: cursor, in: zone), next <= end {
                latest = next
                cursor = next
            }
            if latest != nil || from == start { return latest }
        }
        return nil
    }

    private func dayMatches(day: Int64, weekday: Int64) -> Bool {
        let dayOK = days & (1 << UInt64(day)) != 0
        let weekdayOK = weekdays & (1 << UInt64(weekday)) != 0
        if daysRestricted && weekdaysRestricted { return dayOK || weekdayOK }
        return dayOK && weekdayOK
    }

    /// The instant (seconds since the epoch) of wall-clock time `wall` in `zone`: the earlier one
    /// when it occurs twice, the moment of the change when the change skipped it.
    static func instant(wall: Int64, zone: TimeZone) -> Int64? {
        let before = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(wall - 86_400))))
        let after = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(wall + 86_400))))
        let offset: (Int64) -> Int64 = { Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval($0)))) }
        // The larger offset gives the earlier instant.
        for candidate in Set([before, after]).sorted(by: >) where offset(wall - candidate) == candidate {
            return wall - candidate
        }
        // Skipped (the clock jumped forward over it): the first instant with the new offset.
        guard after > before else { return nil }
        var low = wall - after
        var high = wall - before
        guard offset(high) != before else { return nil }
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(middle) == before { low = middle } else { high = middle }
        }
        return high
    }

    static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    /// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
    static func civil(days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// (year, month, day) → days since 1970-01-01.
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivide(y, 400)
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// 0 = Sunday.
    static func weekday(days: Int64) -> Int64 {
        let w = (days + 4) % 7
        return w < 0 ? w + 7 : w
    }
}

/// A cron expression that cannot be read.
public struct CronError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What is wrong, naming the field.
    public var message: String
    public var description: String { message }
}
