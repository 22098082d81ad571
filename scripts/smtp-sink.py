#!/usr/bin/python3
"""A real SMTP server for tests and the demo (Debian's python3-aiosmtpd).

Every message received is parsed with Python's own MIME parser (the `email` package) and written
as one JSON line to --out: envelope, peer (one per connection), decoded subject, headers, parts,
the longest raw line, and parser defects. Recipients whose local part starts with `reject` get
`550 5.1.1 no such user`; `defer` gets `451 4.3.0 try again later`; `deferonce` gets 451 the first
time only. Rejections are written too, so tests can count delivery attempts.

With --auth USER:PASSWORD the server requires AUTH (PLAIN or LOGIN) and answers a wrong password
with 535. With --cert/--key it offers STARTTLS (and requires it before AUTH); with --implicit-tls
too, it speaks TLS from the first byte (smtps). Failed logins are written as {"auth_failed": user}.
"""
import argparse, asyncio, email, email.policy, json, signal, ssl, sys, time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

class Sink:
    def __init__(self, out):
        self.out = open(out, "a", buffering=1)
        self.deferred = set()

    def write(self, record):
        record["at"] = time.time()
        self.out.write(json.dumps(record) + "\n")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        peer = "%s:%s" % tuple(session.peer[:2])
        if local.startswith("reject"):
            self.write({"rejected": address, "code": 550, "peer": peer})
            return "550 5.1.1 no such user"
        if local.startswith("deferonce") and address not in self.deferred:
            self.deferred.add(address)
            self.write({"rejected": address, "code": 451, "peer": peer})
            return "451 4.3.0 try again later"
        if local.startswith("defer") and not local.startswith("deferonce"):
            self.write({"rejected": address, "code": 451, "peer": peer})
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for part in (message.walk() if message.is_multipart() else [message]):
            if part.is_multipart():
                continue
            parts.append({
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "transfer_encoding": part.get("Content-Transfer-Encoding"),
                "body": part.get_content(),
            })
        self.write({
            "peer": "%s:%s" % tuple(session.peer[:2]),
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["Subject"]),
            "message_id": message["Message-ID"],
            "from": str(message["From"]),
            "to": str(message["To"] or ""),
            "headers": sorted(set(message.keys())),
            "content_type": message.get_content_type(),
            "parts": parts,
            "max_line": max(len(line) for line in raw.split(b"\r\n")),
            "defects": len(message.defects) + sum(len(p.defects) for p in message.walk()),
        })
        return "250 Message accepted"

class Authenticator:
    def __init__(self, sink, user, password):
        self.sink, self.user, self.password = sink, user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and auth_data.login == self.user and auth_data.password == self.password:
            return AuthResult(success=True)
        login = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else "?"
        self.sink.write({"auth_failed": login, "mechanism": mechanism})
        return AuthResult(success=False, handled=False)

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--auth", help="USER:PASSWORD the server requires")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--implicit-tls", action="store_true")
    args = parser.parse_args()
    sink = Sink(args.out)
    options = {}
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    if args.auth:
        user, password = args.auth.split(":", 1)
        options["authenticator"] = Authenticator(sink, user, password)
        options["auth_required"] = True
        # Plain-text AUTH only where there is no TLS at all (a local relay); else after STARTTLS.
        options["auth_require_tls"] = bool(context) and not args.implicit_tls
    if context and args.implicit_tls:
        controller = Controller(sink, hostname="127.0.0.1", port=args.port, ssl_context=context, server_kwargs=options)
    else:
        if context:
            options["tls_context"] = context
            options["require_starttls"] = True
        controller = Controller(sink, hostname="127.0.0.1", port=args.port, server_kwargs=options)
    controller.start()
    print("smtp sink on 127.0.0.1:%d writing %s" % (args.port, args.out), flush=True)
    stop = asyncio.new_event_loop()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        controller.stop()

if __name__ == "__main__":
    main()
