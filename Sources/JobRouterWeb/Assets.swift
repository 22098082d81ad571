/// The dashboard's stylesheet and script, served from the binary (no CDN, no build step). The
/// page's Content-Security-Policy allows only these (`'self'`), never inline script.
enum Assets {
    static let css = """
        :root { --fg: #1d2430; --muted: #5b6472; --line: #dde1e7; --bg: #f7f8fa; --accent: #2f5fd0; --bad: #b3261e; --ok: #1e7d3a; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
        header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem; background: #fff; border-bottom: 1px solid var(--line); }
        header strong { font-size: 1rem; }
        nav a { margin-right: 1rem; color: var(--muted); text-decoration: none; }
        nav a.here { color: var(--fg); font-weight: 600; }
        main { padding: 1rem 1.2rem 3rem; max-width: 1200px; }
        h1 { font-size: 1.25rem; margin: .2rem 0 1rem; }
        h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; }
        table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
        th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { color: var(--muted); font-weight: 600; font-size: .8rem; text-transform: uppercase; letter-spacing: .02em; }
        td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
        .cards { display: flex; gap: .8rem; flex-wrap: wrap; }
        .card { background: #fff; border: 1px solid var(--line); padding: .6rem .9rem; min-width: 9rem; }
        .card b { display: block; font-size: 1.4rem; font-variant-numeric: tabular-nums; }
        .card span { color: var(--muted); font-size: .8rem; }
        pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow: auto; white-space: pre-wrap; word-break: break-all; }
        .bad { color: var(--bad); }
        .ok { color: var(--ok); }
        .muted { color: var(--muted); }
        form.inline { display: inline; }
        button { font: inherit; padding: .2rem .7rem; border: 1px solid var(--line); background: #fff; cursor: pointer; }
        button.danger { color: var(--bad); border-color: var(--bad); }
        input, select { font: inherit; padding: .2rem .4rem; }
        .flash { background: #fff; border-left: 4px solid var(--accent); padding: .5rem .8rem; margin-bottom: 1rem; }
        svg.chart { background: #fff; border: 1px solid var(--line); width: 100%; height: 140px; }
        svg.chart .p { fill: var(--accent); } svg.chart .f { fill: var(--bad); }
        """

    /// Refreshes elements marked `data-live="key"` from `/api/overview` every 2 s, and replaces a
    /// `<main data-refresh>` with the same page fetched again every 2 s.
    static let script = """
        (function () {
          var main = document.querySelector('main[data-refresh]');
          if (main) {
            setInterval(function () {
              fetch(location.href, { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.text() : null; })
                .then(function (text) {
                  if (!text) return;
                  var fresh = new DOMParser().parseFromString(text, 'text/html').querySelector('main');
                  if (fresh) main.replaceChildren.apply(main, Array.from(fresh.childNodes));
                }).catch(function () {});
            }, 2000);
          }
          var live = document.querySelectorAll('[data-live]');
          if (!live.length) return;
          function refresh() {
            fetch('/api/overview', { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.json() : null; })
              .then(function (data) {
                if (!data) return;
                live.forEach(function (el) {
                  var value = data[el.getAttribute('data-live')];
                  if (value !== undefined) el.textContent = String(value);
                });
              }).catch(function () {});
          }
          setInterval(refresh, 2000);
        })();
        """
}
