import ArgumentParser
import Foundation
import JobRouter

/// `jobrouter systemd --group NAME`: prints a systemd unit template that runs one worker group.
struct SystemdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "systemd",
        abstract: "Print a systemd unit template (jobrouter-GROUP@.service) that runs one worker group.",
        discussion: """
            jobrouter systemd --group mail > /etc/systemd/system/jobrouter-mail@.service
            systemctl daemon-reload && systemctl enable --now jobrouter-mail@1 jobrouter-mail@2
            Each instance is one worker process. Secrets go in the EnvironmentFile (mode 0600), never in the unit.
            """)

    @OptionGroup var options: CommonOptions

    @Option(name: .long, help: "The worker group the unit runs.")
    var group: String

    @Option(name: .long, help: "The jobrouter binary in ExecStart (default: this one).")
    var binary: String?

    @Option(name: .long, help: "The user the workers run as.")
    var user = "jobrouter"

    @Option(name: .long, help: "The file with secrets (JOBROUTER_REDIS_URL, JOBROUTER_SMTP_PASSWORD, PGPASSWORD, ...).")
    var environmentFile = "/etc/jobrouter/jobrouter.env"

    func run() async throws {
        try await CommandFailure.reporting {
            let configuration = try options.loadConfiguration()
            guard let settings = configuration.groups[group] else {
                let known = configuration.groups.keys.sorted().joined(separator: ", ")
                throw CommandFailure("\(configuration.file ?? options.configPath): unknown group '\(group)'; groups: \(known)")
            }
            let executable = try binary ?? Self.currentExecutable()
            let config = URL(fileURLWithPath: options.configPath).standardizedFileURL.path
            print(SystemdUnit(group: settings, binary: executable, config: config, user: user,
                              environmentFile: environmentFile, http: configuration.httpListen).text)
        }
    }

    /// `jobrouter` beside this executable (`jobrouter-cli`, which `jobrouter` hands commands to):
    /// the one that runs a lean worker when it can.
    static func currentExecutable() throws -> String {
        guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
            throw CommandFailure("cannot tell where this binary is; pass --binary PATH")
        }
        let front = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("jobrouter").path
        return FileManager.default.isExecutableFile(atPath: front) ? front : path
    }
}

/// A unit template for one worker group: one worker process per instance (`@1`, `@2`, ...).
struct SystemdUnit {
    let group: WorkerGroupConfiguration
    let binary: String
    let config: String
    let user: String
    let environmentFile: String
    let http: HTTPListenAddress?

    /// Longer than the group's shutdown_timeout, so jobs get all of it to finish (and to be put
    /// back) before systemd sends SIGKILL.
    var stopTimeoutSeconds: Int {
        Int(group.shutdownTimeout.inSeconds.rounded(.up)) + 30
    }

    var text: String {
        let name = group.name
        var lines = [
            "# jobrouter-\(name)@.service: JobRouter worker group '\(name)', one worker process per instance.",
            "#   jobrouter systemd --group \(name) > /etc/systemd/system/jobrouter-\(name)@.service",
            "#   systemctl daemon-reload && systemctl enable --now jobrouter-\(name)@1",
            "# Secrets (JOBROUTER_REDIS_URL with its password, JOBROUTER_SMTP_PASSWORD, PGPASSWORD) go in",
            "# \(environmentFile) (owned by root, mode 0600), never in this file.",
        ]
        if let http {
            lines.append("# [http] listen = \"\(http)\" is in the configuration: give each instance on one host its own port")
            lines.append("# (e.g. an override with ExecStart= ... --http 127.0.0.1:946%i).")
        }
        lines += [
            "",
            "[Unit]",
            "Description=JobRouter worker group \(name) (instance %i)",
            "Wants=network-online.target",
            "After=network-online.target redis-server.service postgresql.service",
            "# A bad configuration or refused credentials exit 1 at once: do not restart in a tight loop.",
            "StartLimitIntervalSec=60",
            "StartLimitBurst=5",
            "",
            "[Service]",
            "Type=simple",
            "ExecStart=\(Self.quoted(binary)) work --config \(Self.quoted(config)) --group \(Self.quoted(name))",
            "EnvironmentFile=-\(environmentFile)",
            "User=\(user)",
            "Group=\(user)",
            "# SIGTERM: stop fetching, let running jobs finish within shutdown_timeout "
                + "(\(DurationParser.format(group.shutdownTimeout))), put the rest back at the head of their queues.",
            "KillSignal=SIGTERM",
            "KillMode=mixed",
            "TimeoutStopSec=\(stopTimeoutSeconds)",
            "Restart=on-failure",
            "RestartSec=2s",
            "LimitNOFILE=65536",
            "SyslogIdentifier=jobrouter-\(name)",
            "# Hardening. exec handlers that write files need ReadWritePaths= for them.",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectControlGroups=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "RestrictNamespaces=yes",
            "RestrictRealtime=yes",
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
            "SystemCallArchitectures=native",
            "UMask=0077",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]
        return lines.joined(separator: "\n")
    }

    /// A word for ExecStart: `%` doubled (systemd's specifier sign), quoted when it holds a space,
    /// a quote or a backslash.
    static func quoted(_ word: String) -> String {
        let word = word.replacingOccurrences(of: "%", with: "%%")
        guard word.contains(where: { $0 == " " || $0 == "\"" || $0 == "\\" || $0 == "'" }) else { return word }
        let escaped = word.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return "\"\(escaped)\""
    }
}
