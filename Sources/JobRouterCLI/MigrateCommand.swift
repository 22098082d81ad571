import ArgumentParser
import Foundation
import JobRouter
import JobRouterPostgres

/// `jobrouter migrate`: creates or updates JobRouter's schema in PostgreSQL.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or update JobRouter's schema in PostgreSQL ([postgres] in queues.toml).",
        discussion: "Versioned and idempotent; safe when several processes run it at once (an advisory lock).")

    @OptionGroup var options: CommonOptions

    @Flag(name: .long, help: "Print the applied and pending versions; change nothing.")
    var status = false

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            guard let settings = configuration.postgres else {
                throw CommandFailure("\(configuration.file ?? "configuration"): migrate needs a [postgres] table with a url")
            }
            let pool = PostgresPool(settings: settings, applicationName: "jobrouter migrate")
            let migrator = PostgresMigrator(schema: settings.schema)
            if status {
                let current = try await migrator.status(pool)
                for version in current.applied {
                    print("applied  \(version.version)  \(version.appliedAt)  \(version.name)")
                }
                for migration in current.pending { print("pending  \(migration.version)  \(migration.name)") }
                if current.pending.isEmpty { print("schema \(settings.schema) is up to date") }
                return
            }
            let applied = try await migrator.migrate(pool)
            for migration in applied { print("applied \(migration.version): \(migration.name)") }
            print(applied.isEmpty ? "schema \(settings.schema) is up to date" : "schema \(settings.schema) migrated")
        }
    }
}
