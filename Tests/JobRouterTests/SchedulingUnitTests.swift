import Foundation
import Testing
@testable import JobRouter

private func date(_ text: String) -> Date {
    guard let date = Timestamp.parse(text) else { fatalError("bad test date \(text)") }
    return date
}

private func cron(_ text: String) throws -> CronExpression { try CronExpression(parsing: text) }

/// Cron expressions: parsing, next fire times in UTC and across daylight-saving changes.
struct CronExpressionTests {
    @Test func readsFieldsListsRangesStepsNamesAndMacros() throws {
        #expect(try cron("0 3 * * *").nextFire(after: date("2026-12-02T10:00:00Z")) == date("2026-12-03T03:00:00Z"))
        #expect(try cron("*/15 * * * *").nextFire(after: date("2026-12-02T10:07:30Z")) == date("2026-12-02T10:15:00Z"))
        #expect(try cron("5,35 9-17/4 * * *").nextFire(after: date("2026-12-02T10:00:00Z")) == date("2026-12-02T13:05:00Z"))
        #expect(try cron("0 0 * * mon-fri").nextFire(after: date("2026-12-04T12:00:00Z")) == date("2026-12-07T00:00:00Z"))  // Fri → Mon
        #expect(try cron("0 12 * jan,JUL sun").nextFire(after: date("2026-12-02T00:00:00Z")) == date("2027-01-03T12:00:00Z"))
        #expect(try cron("0 0 * * 7").nextFire(after: date("2026-12-02T00:00:00Z")) == date("2026-12-06T00:00:00Z"))  // 7 is Sunday
        #expect(try cron("@hourly").nextFire(after: date("2026-12-02T10:00:00Z")) == date("2026-12-02T11:00:00Z"))
        #expect(try cron("@daily").nextFire(after: date("2026-12-02T10:00:00Z")) == date("2026-12-03T00:00:00Z"))
        #expect(try cron("@weekly").nextFire(after: date("2026-12-02T10:00:00Z")) == date("2026-12-06T00:00:00Z"))
        #expect(try cron("@monthly").nextFire(after: date("2026-12-02T10:00:00Z")) == date("2027-01-01T00:00:00Z"))
        #expect(try cron("@yearly").nextFire(after: date("2026-12-02T10:00:00Z")) == date("2027-01-01T00:00:00Z"))
        // Seconds, when six fields are given.
        #expect(try cron("*/10 * * * * *").nextFire(after: date("2026-12-02T10:00:01Z")) == date("2026-12-02T10:00:10Z"))
        // Leap day: the next one.
        #expect(try cron("0 0 29 2 *").nextFire(after: date("2026-03-01T00:00:00Z")) == date("2028-02-29T00:00:00Z"))
    }

    @Test func bothDayFieldsRestrictedMatchEitherLikeVixieCron() throws {
        // The 13th, or any Friday: after Wed 2026-12-02 comes Fri 2026-12-04.
        #expect(try cron("0 0 13 * fri").nextFire(after: date("2026-12-02T00:00:00Z")) == date("2026-12-04T00:00:00Z"))
        // Only the day of month restricted: the 13th, whatever the weekday.
        #expect(try cron("0 0 13 * *").nextFire(after: date("2026-12-02T00:00:00Z")) == date("2026-12-13T00:00:00Z"))
    }

    @Test func errorsNameTheField() {
        func message(_ text: String) -> String {
            do {
                _ = try CronExpression(parsing: text)
                return "parsed"
            } catch {
                return error.message
            }
        }
        #expect(message("0 24 * * *") == "hour: 24 is out of range 0-23")
        #expect(message("* * *").hasPrefix("3 field(s)"))
        #expect(message("0 3 * foo *").hasPrefix("month: 'foo' is not a number or a name"))
        #expect(message("*/0 * * * *") == "minute: step in '*/0' must be a positive number")
        #expect(message("0 5-1 * * *") == "hour: range '5-1' goes backwards")
        #expect(message("0 0 30 2 *").contains("never fire"))
        #expect(message("@reboot").hasPrefix("unknown macro"))
        #expect(message("1,,2 * * * *").hasPrefix("minute: empty item"))
    }

    @Test func aSkippedTimeFiresOnceAtTheChangeAndARepeatedTimeOnce() throws {
        let berlin = try #require(TimeZone(identifier: "Europe/Berlin"))
        // 2027-03-28: 02:00 CET jumps to 03:00 CEST (01:00Z). 02:30 does not exist that night.
        let daily = try cron("30 2 * * *")
        #expect(daily.nextFire(after: date("2027-03-27T12:00:00Z"), in: berlin) == date("2027-03-28T01:00:00Z"))
        #expect(daily.nextFire(after: date("2027-03-28T01:00:00Z"), in: berlin) == date("2027-03-29T00:30:00Z"))
        // Every 15 minutes: the four skipped times are one fire at the change, then 03:00 local is the same instant.
        let quarter = try cron("*/15 2-3 28 3 *")
        let spring = CronSchedule(name: "q", cron: quarter, timeZone: berlin, type: "t").nextFires(after: date("2027-03-28T00:00:00Z"), count: 3)
        #expect(spring == [date("2027-03-28T01:00:00Z"), date("2027-03-28T01:15:00Z"), date("2027-03-28T01:30:00Z")])
        // 2027-10-31: 03:00 CEST goes back to 02:00 CET (at 01:00Z). 02:30 happens twice; it fires at the first.
        #expect(daily.nextFire(after: date("2027-10-30T12:00:00Z"), in: berlin) == date("2027-10-31T00:30:00Z"))
        #expect(daily.nextFire(after: date("2027-10-31T00:30:00Z"), in: berlin) == date("2027-11-01T01:30:00Z"))
        // Winter and summer times.
        #expect(try cron("0 3 * * *").nextFire(after: date("2026-12-02T12:00:00Z"), in: berlin) == date("2026-12-03T02:00:00Z"))
        #expect(try cron("0 3 * * *").nextFire(after: date("2027-06-02T12:00:00Z"), in: berlin) == date("2027-06-03T01:00:00Z"))
    }

    @Test func latestFireFindsTheLastTickInAWindow() throws {
        let everyMinute = try cron("* * * * *")
        #expect(everyMinute.latestFire(after: date("2026-12-02T10:00:00Z"), through: date("2026-12-02T10:05:30Z")) == date("2026-12-02T10:05:00Z"))
        #expect(everyMinute.latestFire(after: date("2026-12-02T10:05:00Z"), through: date("2026-12-02T10:05:59Z")) == nil)
        // A long window on a frequent schedule looks at the recent ticks only.
        let everySecond = try cron("* * * * * *")
        #expect(everySecond.latestFire(after: date("2026-11-02T10:00:00Z"), through: date("2026-12-02T10:05:30.5Z")) == date("2026-12-02T10:05:30Z"))
        #expect(try cron("0 0 1 1 *").latestFire(after: date("2020-06-01T00:00:00Z"), through: date("2026-12-02T00:00:00Z")) == date("2026-01-01T00:00:00Z"))
    }
}

/// `[schedules]`, `unique` and autoscaled `concurrency` in queues.toml.
struct WorkflowConfigurationTests {
    let base = """
        default_queue = "default"
        [types.report]
        handler = "noop"
        priorities = { low = "reports:low", high = "reports:high" }
        default_priority = "low"
        [types.sync]
        handler = "noop"
        unique = { key = ["user_id"], for = "10m", until = "start" }
        [groups.general]
        queues = ["reports:high", "reports:low", "default"]
        concurrency = { min = 2, max = 64, target_wait = "2s" }

        """

    @Test func readsSchedulesUniqueAndAutoscaling() throws {
        let configuration = try RouterConfiguration.parse(toml: base + """
            [schedules.nightly_report]
            cron = "0 3 * * *"
            timezone = "Europe/Berlin"
            type = "report"
            priority = "low"
            payload = { kind = "daily" }
            catch_up = "1h"
            """)
        let schedule = try #require(configuration.schedules["nightly_report"])
        #expect(schedule.cron.text == "0 3 * * *")
        #expect(schedule.timeZone.identifier == "Europe/Berlin")
        #expect(schedule.payload == .object(["kind": .string("daily")]))
        #expect(schedule.catchUp == .seconds(3600))
        #expect(configuration.types["sync"]?.unique == UniqueTerms(keyPaths: ["user_id"], lifetime: .seconds(600), until: .start))
        let group = try #require(configuration.groups["general"])
        #expect(group.scaling == ConcurrencyScaling(min: 2, max: 64, targetWait: .seconds(2)))
        #expect(group.concurrency == 64)
    }

    /// UTC by any of its names is the default zone, and says so as `UTC`.
    @Test(arguments: ["UTC", "Etc/UTC", "GMT"]) func utcByNameIsTheDefaultZone(name: String) throws {
        let configuration = try RouterConfiguration.parse(toml: base + "[schedules.x]\ncron = \"@daily\"\ntype = \"report\"\ntimezone = \"\(name)\"\n")
        let schedule = try #require(configuration.schedules["x"])
        #expect(schedule.timeZone == CronSchedule.utc)
        #expect(schedule.zoneName == "UTC")
    }

    @Test func mistakesNameTheLineAndKeyPath() {
        func failure(_ extra: String) -> String { parseError(base + extra)?.description ?? "parsed" }
        #expect(failure("[schedules.x]\ncron = \"0 25 * * *\"\ntype = \"report\"\n") == "queues.toml:13: schedules.x.cron: hour: 25 is out of range 0-23")
        #expect(failure("[schedules.x]\ncron = \"@daily\"\ntype = \"nope\"\n").hasPrefix("queues.toml:14: schedules.x.type: unknown job type 'nope'"))
        #expect(failure("[schedules.x]\ncron = \"@daily\"\ntype = \"report\"\ntimezone = \"Mars/Base\"\n").hasPrefix("queues.toml:15: schedules.x.timezone: unknown time zone 'Mars/Base'"))
        #expect(failure("[schedules.x]\ncron = \"@daily\"\ntype = \"report\"\npriority = \"urgent\"\n").hasPrefix("queues.toml:15: schedules.x.priority:"))
        #expect(failure("[schedules.x]\ncron = \"@daily\"\ntype = \"sync\"\n").hasPrefix("queues.toml:12: schedules.x.payload: type 'sync' is unique by user_id, and the payload has no 'user_id'"))
        #expect(failure("[types.y]\nhandler = \"noop\"\nunique = { key = [\"a\"], until = \"forever\" }\n").hasPrefix("queues.toml:14: types.y.unique.until: 'forever' is not one of start, done, ttl"))
        #expect(parseError(base.replacingOccurrences(of: "min = 2, max = 64", with: "min = 8, max = 4"))?.description == "queues.toml:11: groups.general.concurrency.max: must not be less than min (8)")
    }

    @Test func uniqueKeysComeFromPayloadPaths() throws {
        let terms = UniqueTerms(keyPaths: ["user.id", "kind"])
        #expect(try terms.key(for: .object(["user": .object(["id": .integer(42)]), "kind": .string("a")]), type: "t") == "[42,\"a\"]")
        #expect(throws: UniqueKeyError.self) { try terms.key(for: .object(["kind": .string("a")]), type: "t") }
        #expect(throws: UniqueKeyError.self) { try terms.key(for: .string("not an object"), type: "t") }
    }

    @Test func autoscalingGrowsOnlyWhenBusyAndLate() {
        let terms = ConcurrencyScaling(min: 2, max: 10, targetWait: .seconds(2))
        #expect(ConcurrencyScaler.decide(limit: 2, busy: 2, wait: 3, terms: terms) == 3)
        #expect(ConcurrencyScaler.decide(limit: 8, busy: 8, wait: 3, terms: terms) == 10)
        #expect(ConcurrencyScaler.decide(limit: 10, busy: 10, wait: 30, terms: terms) == 10)
        #expect(ConcurrencyScaler.decide(limit: 4, busy: 3, wait: 30, terms: terms) == 4)  // idle slots: more would not help
        #expect(ConcurrencyScaler.decide(limit: 4, busy: 4, wait: 1, terms: terms) == 4)   // on target
        // After a quiet period: what it needed plus a quarter, at least min, always smaller.
        #expect(ConcurrencyScaler.shrink(limit: 10, peakBusy: 0, terms: terms) == 2)
        #expect(ConcurrencyScaler.shrink(limit: 10, peakBusy: 4, terms: terms) == 5)
        #expect(ConcurrencyScaler.shrink(limit: 10, peakBusy: 9, terms: terms) == 9)
    }

    @Test func envelopesCarryUniqueChainAndBatch() throws {
        var job = JobEnvelope(type: "a", priority: nil, queue: "q", payload: .integer(1))
        job.unique = UniqueMark(key: "[1]", until: .done, lifetimeMilliseconds: 60_000)
        job.then = [ChainStep(type: "b", priority: "high", queue: "b:high", payload: .string("x"),
                              then: [ChainStep(type: "c", priority: nil, queue: "c", payload: .null)])]
        job.batch = "b-1"
        let decoded = try JobEnvelope.decode(Data(job.jsonText.utf8), queue: "q")
        #expect(decoded.unique == job.unique)
        #expect(decoded.then == job.then)
        #expect(decoded.batch == "b-1")
        #expect(decoded.hasCompletionEffects)
        let next = decoded.then[0].envelope()
        #expect(next.queue == "b:high" && next.then.count == 1 && next.id != job.id)
    }
}
