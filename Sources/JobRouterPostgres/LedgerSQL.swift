import Foundation
import JobRouter

/// The ledger's statements, in one place. `schema` is a plain identifier (checked by the
/// configuration); every value goes in as a parameter.
enum LedgerSQL {
    /// Rows deleted per pruning statement.
    static let pruneBatch = 5000

    /// Stores a JSON array of ``JobRouter/AttemptRecord``s; one already stored (same job and claim) is skipped.
    /// The array is read as `json` into typed columns in one pass (`json_to_recordset`): only each
    /// payload becomes `jsonb`, which costs PostgreSQL (on the workers' cores) far less than making
    /// the whole batch `jsonb` and extracting every field from it.
    static func insert(schema: String) -> String {
        """
        INSERT INTO \(schema).attempts (job_id, claim, type, priority, queue, worker_group, attempt, outcome, error, worker,
                                      enqueued_at, due_at, started_at, finished_at, payload)
        SELECT r.id, r.claim, r.type, r.priority, r.queue, r."group", r.attempt, r.outcome, r.error, r.worker,
               \(time("enqueued_at", schema)), \(time("due_at", schema)), \(time("started_at", schema)), coalesce(\(time("finished_at", schema)), now()),
               (r.entry->'payload')::jsonb
        FROM json_to_recordset($1::json) AS r(id text, claim text, type text, priority text, queue text, "group" text,
                                              attempt integer, outcome text, error text, worker text,
                                              enqueued_at json, due_at json, started_at json, finished_at json, entry json)
        ON CONFLICT (job_id, claim) DO NOTHING
        """
    }

    /// A record's time field: seconds since the epoch (what JobRouter writes) converted inline;
    /// anything else through `record_time` (a PL/pgSQL call per value costs PostgreSQL more CPU
    /// than the rest of the row, and the workers share its cores).
    private static func time(_ field: String, _ schema: String) -> String {
        "CASE WHEN json_typeof(r.\(field)) = 'number' THEN to_timestamp((r.\(field))::text::double precision) ELSE \(schema).record_time(r.\(field)::jsonb) END"
    }

    static func versionCheck(schema: String) -> String {
        "SELECT coalesce(max(version), 0) AS version FROM \(schema).schema_migrations"
    }

    /// Deletes up to ``pruneBatch`` rows finished more than `$1` seconds ago (a short statement,
    /// never a long lock).
    static func prune(schema: String) -> String {
        """
        DELETE FROM \(schema).attempts WHERE ctid = ANY(ARRAY(
          SELECT ctid FROM \(schema).attempts WHERE finished_at < now() - make_interval(secs => $1::double precision)
          LIMIT \(pruneBatch)))
        """
    }

    /// `[record,record,…]`: the records are JSON objects already.
    static func array(_ records: [Data]) -> String {
        var text = "["
        text.reserveCapacity(records.reduce(2) { $0 + $1.count + 1 })
        for (index, record) in records.enumerated() {
            if index > 0 { text += "," }
            text += String(decoding: record, as: UTF8.self)
        }
        return text + "]"
    }

    /// A record PostgreSQL refused, made storable: the entry (payload) left out, NUL characters
    /// removed, and the refusal noted in its error. One that is not even JSON is stored as a
    /// `malformed` attempt under its place in the log, so it is never lost without a trace.
    static func sanitized(_ record: Data, streamID: String, refusal: String) -> Data {
        let note = "ledger record not storable as sent (\(refusal.prefix(200))); stored without its payload"
        guard case .object(var fields)? = try? JSONValue.parse(record) else {
            let placeholder: [String: JSONValue] = [
                "id": .string("unreadable-\(streamID)"), "claim": .string(streamID), "outcome": .string("malformed"),
                "queue": .string("?"), "worker": .string("?"), "error": .string(note),
            ]
            return Data(JSONValue.object(placeholder).jsonText.utf8)
        }
        fields["entry"] = nil
        for (key, value) in fields {
            if case .string(let text) = value { fields[key] = .string(text.replacingOccurrences(of: "\u{0}", with: "")) }
        }
        let error = fields["error"]?.stringValue.map { $0 + "; " } ?? ""
        fields["error"] = .string(error + note)
        if fields["claim"]?.stringValue == nil { fields["claim"] = .string(streamID) }
        if fields["id"]?.stringValue == nil { fields["id"] = .string("unreadable-\(streamID)") }
        for key in ["queue", "worker"] where fields[key]?.stringValue == nil { fields[key] = .string("?") }
        if let outcome = fields["outcome"]?.stringValue, AttemptOutcome(rawValue: outcome) != nil {} else {
            fields["outcome"] = .string("malformed")
        }
        if let attempt = fields["attempt"], !(attempt.intValue.map { $0 >= 1 && $0 < Int(Int32.max) } ?? false) {
            fields["attempt"] = nil
        }
        return Data(JSONValue.object(fields).jsonText.utf8)
    }
}
