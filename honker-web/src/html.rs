//! The page frame, escaping, and the mount point links are built from.

use std::fmt::Write as _;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::response::Html;

/// Where the dashboard is mounted (`""` at the root, `"/honker"` when
/// nested there), read from the request: links are `{base}/...`.
pub(crate) struct Base(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let inner = parts.uri.path().to_string();
        let outer = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| inner.clone(), |o| o.0.path().to_string());
        let base = if inner == "/" {
            outer.trim_end_matches('/').to_string()
        } else {
            outer
                .strip_suffix(&inner)
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string()
        };
        Ok(Base(base))
    }
}

/// The address of dashboard path `path` (starting with `/`) under `base`.
/// A nested router answers its root at `base` itself, not at `base/`.
pub(crate) fn href(base: &str, path: &str) -> String {
    match path.strip_prefix('/') {
        Some(rest) if !base.is_empty() && (rest.is_empty() || rest.starts_with('?')) => {
            format!("{base}{rest}")
        }
        _ => format!("{base}{path}"),
    }
}

/// `s` with HTML's special characters escaped.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` escaped for a URL path segment or query value.
pub(crate) fn url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A unix second as UTC text.
pub(crate) fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// A count of seconds, shortly: `45s`, `3m 20s`, `2h 5m`, `3d 4h`.
pub(crate) fn span(s: i64) -> String {
    let s = s.max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3_600, s % 3_600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// `t` relative to `now`: "in 5m 3s" or "2h 1m ago".
pub(crate) fn relative(t: i64, now: i64) -> String {
    let d = t.saturating_sub(now);
    if d > 0 {
        format!("in {}", span(d))
    } else if d == 0 {
        "now".into()
    } else {
        format!("{} ago", span(d.saturating_neg()))
    }
}

/// At most `n` characters of `s`, marked when cut.
pub(crate) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// A `POST` button: a one-button form (works without JavaScript).
/// `back` is the page to return to, within the dashboard.
pub(crate) fn button(base: &str, action: &str, label: &str, back: &str, class: &str) -> String {
    format!(
        "<form method=post action=\"{}{}\" class=inline>\
         <input type=hidden name=back value=\"{}\">\
         <button type=submit class=\"{}\">{}</button></form>",
        esc(base),
        esc(action),
        esc(back),
        esc(class),
        esc(label)
    )
}

const STYLE: &str = "
:root{--fg:#1d2330;--muted:#6b7385;--line:#e3e6ec;--bg:#f7f8fa;--accent:#2f5fd0;--bad:#c0392b;--ok:#1e8e5a;--warn:#b7791f}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:center}
header b{font-size:16px}header a{color:#c9d3ea;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .file{margin-left:auto;color:#8f9ab3;font-size:12px}
main{padding:18px 20px;max-width:1200px}
h1{font-size:18px;margin:4px 0 14px}h2{font-size:15px;margin:22px 0 8px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.n{text-align:right;font-variant-numeric:tabular-nums}
a{color:var(--accent)}code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#fff;border:1px solid var(--line);padding:10px;overflow:auto;max-height:360px;margin:0}
.inline{display:inline}button{font:inherit;font-size:12px;padding:3px 10px;border:1px solid var(--line);border-radius:4px;background:#fff;cursor:pointer}
button.danger{color:var(--bad);border-color:#efc2bd}button.go{color:var(--ok);border-color:#b9e0cc}
.tag{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;background:#eef1f6;color:var(--muted)}
.tag.paused{background:#fdf0d9;color:var(--warn)}.tag.dead{background:#fbe4e1;color:var(--bad)}.tag.running{background:#e0ecff;color:var(--accent)}
.notice{background:#e8f5ee;border:1px solid #b9e0cc;padding:8px 12px;margin-bottom:14px}
.muted{color:var(--muted)}.pager{margin:10px 0;display:flex;gap:12px}.tabs{margin:0 0 12px;display:flex;gap:14px}
.tabs a.on{font-weight:600;color:var(--fg);text-decoration:none}dl{display:grid;grid-template-columns:160px 1fr;gap:6px 12px;margin:0}
dt{color:var(--muted)}dd{margin:0}.chart{background:#fff;border:1px solid var(--line);padding:10px}
.actions{display:flex;gap:8px;margin:8px 0 14px}
.search{display:flex;gap:6px;margin:0 0 12px}.search input[type=search]{min-width:280px;padding:4px 8px;border:1px solid var(--line);border-radius:4px}
";

/// Refresh `<main>` in place when the file changes (server-sent events).
const SCRIPT: &str = "
(function(){
  if(!window.EventSource||!window.fetch)return;
  var base=document.body.getAttribute('data-base');
  var busy=false,again=false;
  function refresh(){
    if(busy){again=true;return;}busy=true;
    fetch(location.href,{headers:{'X-Honker-Refresh':'1'}}).then(function(r){return r.text();}).then(function(t){
      var doc=new DOMParser().parseFromString(t,'text/html');var m=doc.querySelector('main');
      var old=document.querySelector('main');if(m&&old){old.replaceWith(m);}
      document.body.setAttribute('data-refreshes',String(1+Number(document.body.getAttribute('data-refreshes')||0)));
    }).catch(function(){}).then(function(){busy=false;if(again){again=false;refresh();}});
  }
  var es=null;
  function open(){
    if(es)return;es=new EventSource(base+'/events');
    es.addEventListener('change',refresh);es.addEventListener('tick',refresh);
    es.addEventListener('open',function(){document.body.setAttribute('data-live','1');});
  }
  /* A stream holds one of the browser's few connections to this host: let
     go of it when the page is hidden or left (kept in the back/forward
     cache), take it again, with a refresh, when it is shown. */
  function close(){if(es){es.close();es=null;document.body.removeAttribute('data-live');}}
  document.addEventListener('visibilitychange',function(){if(document.hidden){close();}else{open();refresh();}});
  window.addEventListener('pagehide',close);
  window.addEventListener('pageshow',function(e){if(e.persisted){open();refresh();}});
  if(!document.hidden)open();
})();
";

/// Which page of the menu is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Queues,
    Running,
    Dead,
    Schedules,
    None,
}

/// The whole page around `body`.
pub(crate) fn page(
    base: &str,
    title: &str,
    nav: Nav,
    file: &str,
    notice: Option<&str>,
    body: &str,
) -> Html<String> {
    let item = |n: Nav, href: &str, label: &str| {
        format!(
            "<a href=\"{}\"{}>{}</a>",
            esc(&self::href(base, href)),
            if n == nav { " class=on" } else { "" },
            label
        )
    };
    let notice = notice
        .filter(|n| !n.is_empty())
        .map(|n| format!("<div class=notice role=status>{}</div>", esc(n)))
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>{} · honker</title><style>{STYLE}</style></head>\
         <body data-base=\"{}\"><header><b>honker</b>{}{}{}{}\
         <span class=file title=\"the database file\">{}</span></header>\
         <main>{notice}{body}</main><script>{SCRIPT}</script></body></html>",
        esc(title),
        esc(base),
        item(Nav::Queues, "/", "Queues"),
        item(Nav::Running, "/running", "Running"),
        item(Nav::Dead, "/dead", "Dead"),
        item(Nav::Schedules, "/schedules", "Schedules"),
        esc(file),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_markup_out() {
        assert_eq!(
            esc("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
        assert_eq!(url("a b/ç"), "a%20b%2F%C3%A7");
    }

    #[test]
    fn the_root_of_a_nested_dashboard_is_its_base() {
        assert_eq!(href("", "/"), "/");
        assert_eq!(href("/ops", "/"), "/ops");
        assert_eq!(href("/ops", "/?msg=x"), "/ops?msg=x");
        assert_eq!(href("/ops", "/dead"), "/ops/dead");
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(59), "59s");
        assert_eq!(span(200), "3m 20s");
        assert_eq!(span(7_500), "2h 5m");
        assert_eq!(relative(10, 0), "in 10s");
        assert_eq!(relative(0, i64::MAX), format!("{} ago", span(i64::MAX)));
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
