//! The dashboard's router without a browser: pages, links under the mount
//! point, actions and their effects, read-only mode, refused cross-site
//! posts, and the event stream.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use futures::StreamExt;
use honker_core::{rusqlite::Connection, EnqueueOptions, ScheduleSpec};
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    c: Connection,
    dead: i64,
    pending: i64,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let c = honker_core::open(&path).unwrap();
    let one = EnqueueOptions::default().max_attempts(1);
    let dead = honker_core::enqueue(&c, "emails", r#"{"to":"<b>x</b>"}"#, &one).unwrap();
    let got = honker_core::claim_batch(&c, "emails", "w", 1, Duration::from_secs(60)).unwrap();
    honker_core::fail(&c, "w", got[0].lease(), "smtp <script>alert(1)</script>").unwrap();
    let pending = honker_core::enqueue(&c, "emails", "2", &Default::default()).unwrap();
    let nightly = ScheduleSpec::new("nightly", "reports", "0 3 * * *", "{}");
    honker_core::register_schedule(&c, &nightly).unwrap();
    Fixture {
        _dir: dir,
        path,
        c,
        dead,
        pending,
    }
}

fn nested(d: honker_web::Dashboard) -> Router {
    Router::new().nest("/ops", d.router())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    let r = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn post(app: &Router, uri: &str, origin: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::post(uri)
        .header(header::HOST, "dash.local")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        req = req.header(header::ORIGIN, o);
    }
    sent(app, req.body(Body::from("back=%2Fdead")).unwrap()).await
}

/// Send `req`: its status and where it redirects to.
async fn sent(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let r = app.clone().oneshot(req).await.unwrap();
    let location = r
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status(), location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_under_the_mount_point_with_markup_escaped() {
    let f = fixture();
    let h = honker_actors::Honker::open(&f.path).unwrap();
    let app = nested(honker_web::Dashboard::new(h));
    let (status, home) = get(&app, "/ops").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        home.contains("href=\"/ops/dead\"") && home.contains("href=\"/ops\""),
        "links follow the mount"
    );
    assert!(home.contains("data-queue=\"emails\""));
    let (_, dead) = get(&app, "/ops/queues/emails?state=dead").await;
    assert!(dead.contains(&format!("data-job=\"{}\"", f.dead)));
    assert!(dead.contains("smtp &lt;script&gt;"), "errors are escaped");
    assert!(
        !dead.contains("<script>alert"),
        "no markup from the file reaches the page"
    );
    let (status, job) = get(&app, &format!("/ops/jobs/{}", f.dead)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(job.contains("&lt;b&gt;x&lt;/b&gt;") && job.contains("Last error"));
    assert_eq!(get(&app, "/ops/jobs/999").await.0, StatusCode::NOT_FOUND);
    let (_, schedules) = get(&app, "/ops/schedules").await;
    assert!(schedules.contains("data-schedule=\"nightly\""));
    assert_eq!(get(&app, "/ops/running").await.0, StatusCode::OK);
    let (_, paged) = get(&app, "/ops/dead?page=5").await;
    assert!(paged.contains("No jobs here") && paged.contains("newer page"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_change_the_file_and_return_to_the_page_with_what_they_did() {
    let f = fixture();
    let h = honker_actors::Honker::open(&f.path).unwrap();
    let app = nested(honker_web::Dashboard::new(h));
    let same = Some("http://dash.local");

    let (status, to) = post(&app, "/ops/queues/emails/pause", same).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, "/ops/dead?msg=Queue%20emails%20paused.");
    assert!(honker_core::queue_controls(&f.c, "emails").unwrap().paused);
    post(&app, "/ops/queues/emails/resume", same).await;
    assert!(!honker_core::queue_controls(&f.c, "emails").unwrap().paused);

    let (_, to) = post(&app, &format!("/ops/dead/{}/retry", f.dead), same).await;
    assert!(to.contains("requeued"), "{to}");
    assert!(honker_core::get_job(&f.c, f.dead).unwrap().is_some());

    let (_, to) = post(&app, &format!("/ops/jobs/{}/cancel", f.pending), same).await;
    assert!(to.contains("cancelled"), "{to}");
    assert!(honker_core::get_dead(&f.c, f.pending).unwrap().is_some());
    let (_, to) = post(&app, "/ops/dead-all/delete?queue=emails", same).await;
    assert!(to.contains("1%20dead%20job"), "{to}");
    assert!(honker_core::list_dead(&f.c, "emails", 10, 0)
        .unwrap()
        .is_empty());

    let (_, to) = post(&app, "/ops/schedules/nightly/run-now", same).await;
    assert!(to.contains("enqueued%20job"), "{to}");
    assert_eq!(
        honker_core::stats(&f.c)
            .unwrap()
            .iter()
            .find(|q| q.queue == "reports")
            .unwrap()
            .pending_due,
        1
    );
    post(&app, "/ops/schedules/nightly/pause", same).await;
    assert!(
        !honker_core::get_schedule(&f.c, "nightly")
            .unwrap()
            .unwrap()
            .enabled
    );

    let (_, to) = post(&app, "/ops/schedules/weekly/pause", same).await;
    assert!(to.contains("No%20schedule%20weekly"), "{to}");
    assert_eq!(
        post(&app, "/ops/queues/emails/explode", same).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, to) = post(&app, "/ops/dead/999/retry", same).await;
    assert!(to.contains("not%20dead"), "{to}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_and_read_only_dashboards_are_refused() {
    let f = fixture();
    let h = honker_actors::Honker::open(&f.path).unwrap();
    let app = nested(honker_web::Dashboard::new(h.clone()));
    let (status, _) = post(
        &app,
        "/ops/queues/emails/pause",
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!honker_core::queue_controls(&f.c, "emails").unwrap().paused);

    for d in [
        honker_web::Dashboard::new(h).read_only(true),
        honker_web::Dashboard::open_read_only(&f.path).unwrap(),
    ] {
        let app = nested(d);
        let (_, page) = get(&app, "/ops/queues/emails?state=dead").await;
        assert!(page.contains(&format!("data-job=\"{}\"", f.dead)));
        assert!(
            !page.contains("method=post"),
            "a read-only page has no buttons"
        );
        let (status, _) = post(&app, &format!("/ops/dead/{}/retry", f.dead), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(honker_core::get_dead(&f.c, f.dead).unwrap().is_some());
    }
    let missing = f.path.with_file_name("typo.db");
    assert!(honker_web::Dashboard::open_read_only(&missing).is_err());
    assert!(!missing.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_never_leaves_the_dashboard() {
    let f = fixture();
    let h = honker_actors::Honker::open(&f.path).unwrap();
    let app = nested(honker_web::Dashboard::new(h));
    for back in [
        "%2F%2Fevil.example%2F",
        "https%3A%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "%2F%09%2Fevil.example",
        "%2F%0A%2Fevil.example",
        "%2F..%2Fapp%2Fadmin",
        "%2F%252e%252e%2Fapp",
    ] {
        let r = app
            .clone()
            .oneshot(
                Request::post("/ops/queues/emails/pause")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(format!("back={back}")))
                    .unwrap(),
            )
            .await
            .unwrap();
        let to = r.headers()[header::LOCATION].to_str().unwrap().to_string();
        assert!(to.starts_with("/ops?msg="), "{back} -> {to}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_tells_of_a_commit_by_another_connection() {
    let f = fixture();
    let h = honker_actors::Honker::open(&f.path).unwrap();
    let app = nested(honker_web::Dashboard::new(h));
    let r = app
        .clone()
        .oneshot(Request::get("/ops/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = r.into_body().into_data_stream();
    honker_core::enqueue(&f.c, "emails", "3", &Default::default()).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(4), async {
        let mut seen = String::new();
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains("event: change") {
                return seen;
            }
        }
        seen
    })
    .await
    .expect("a change event within 4 s (ticks come every 5 s)");
    assert!(got.contains("event: change"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_limited_to_its_host_names_refuses_others() {
    let f = fixture();
    let d = honker_web::Dashboard::open_read_only(&f.path)
        .unwrap()
        .allow_hosts(["Dash.Local", "localhost:8080"]);
    let app = nested(d);
    let ask = |host: &'static str| {
        let app = app.clone();
        async move {
            app.oneshot(
                Request::get("/ops")
                    .header(header::HOST, host)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
        }
    };
    assert_eq!(ask("dash.local").await, StatusCode::OK);
    assert_eq!(ask("localhost:8080").await, StatusCode::OK);
    // A rebinding domain that resolves to this machine.
    assert_eq!(
        ask("evil.example:8080").await,
        StatusCode::MISDIRECTED_REQUEST
    );
    // Two Host headers: malformed, whichever comes first.
    let two = app
        .clone()
        .oneshot(
            Request::get("/ops")
                .header(header::HOST, "dash.local")
                .header(header::HOST, "evil.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(two.status(), StatusCode::MISDIRECTED_REQUEST);
}

/// A read-only dashboard on a file at rest looks without leaving anything
/// beside it: no `-wal` or `-shm` while it serves pages, after it is
/// dropped, or after another program wrote the file and closed (its last
/// close removes them; a connection the dashboard held would have kept
/// them). It still shows what that program wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_dashboard_leaves_nothing_beside_a_file_at_rest() {
    let f = fixture();
    let Fixture { _dir, path, c, .. } = f;
    drop(c);
    let side = |s: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(s);
        std::path::PathBuf::from(p).exists()
    };
    let at_rest = |what: &str| {
        assert!(!side("-wal") && !side("-shm"), "{what}: a file beside it");
    };
    at_rest("before");
    let app = nested(honker_web::Dashboard::open_read_only(&path).unwrap());
    for uri in [
        "/ops",
        "/ops/queues/emails?state=dead",
        "/ops/dead",
        "/ops/schedules",
    ] {
        let (status, _) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    at_rest("while it serves pages");
    // Another program writes and closes.
    let other = honker_core::open(&path).unwrap();
    honker_core::enqueue(&other, "later", "{}", &Default::default()).unwrap();
    let (_, page) = get(&app, "/ops").await;
    assert!(page.contains("later"), "the new queue is shown");
    drop(other);
    at_rest("after the other program closed");
    let (_, page) = get(&app, "/ops").await;
    assert!(page.contains("later"));
    drop(app);
    at_rest("after");
}

#[tokio::test]
async fn a_jobs_name_is_shown_in_the_job_column_and_on_its_page() {
    let f = fixture();
    let call = honker_core::task_payload("send_digest", &serde_json::json!({"day": 1})).unwrap();
    let named = honker_core::enqueue(&f.c, "emails", &call, &Default::default()).unwrap();
    let app = nested(honker_web::Dashboard::new(
        honker_actors::Honker::open(&f.path).unwrap(),
    ));
    let (_, page) = get(&app, "/ops/queues/emails?state=pending").await;
    assert!(page.contains("<th>Id</th><th>Job</th>"), "{page}");
    let row = |id: i64| -> String {
        let at = page.find(&format!("data-job=\"{id}\"")).expect("its row");
        page[at..].split("</tr>").next().unwrap().to_string()
    };
    assert!(
        row(named).contains("<td>send_digest</td>"),
        "{}",
        row(named)
    );
    assert!(
        row(f.pending).contains("<td>–</td>"),
        "a raw payload names no job: {}",
        row(f.pending)
    );
    let (_, detail) = get(&app, &format!("/ops/jobs/{named}")).await;
    assert!(
        detail.contains("Job") && detail.contains("send_digest"),
        "{detail}"
    );
}

/// Mounted with `nest_service`, the dashboard answers its root with and
/// without the trailing slash, and its links follow the mount either way
/// (axum's `nest` does not route `/ops/` at all).
#[tokio::test]
async fn mounted_as_a_service_the_root_answers_with_a_trailing_slash_too() {
    let f = fixture();
    let h = honker_actors::Honker::open(&f.path).unwrap();
    let app = Router::new().nest_service("/ops", honker_web::Dashboard::new(h).router());
    for root in ["/ops", "/ops/"] {
        let (status, page) = get(&app, root).await;
        assert_eq!(status, StatusCode::OK, "{root}");
        assert!(
            page.contains("href=\"/ops/dead\"") && !page.contains("href=\"/ops//"),
            "{root}: links under the mount: {page}"
        );
    }
    let (status, dead) = get(&app, "/ops/dead").await;
    assert_eq!(status, StatusCode::OK);
    assert!(dead.contains(&format!("data-job=\"{}\"", f.dead)));
}

#[tokio::test]
async fn a_queues_own_page_pauses_and_resumes_it() {
    let f = fixture();
    let h = honker_actors::Honker::open(&f.path).unwrap();
    let app = nested(honker_web::Dashboard::new(h.clone()));
    let (_, page) = get(&app, "/ops/queues/emails").await;
    assert!(
        page.contains("action=\"/ops/queues/emails/pause\""),
        "{page}"
    );
    h.queue("emails").pause().await.unwrap();
    let (_, page) = get(&app, "/ops/queues/emails").await;
    assert!(
        page.contains("action=\"/ops/queues/emails/resume\"") && !page.contains("/emails/pause\""),
        "a paused queue's page resumes it: {page}"
    );
    let (status, _) = post(&app, "/ops/queues/emails/resume", Some("http://dash.local")).await;
    assert!(status.is_redirection(), "{status}");
    assert!(!h.queue("emails").controls().await.unwrap().paused);
    let read_only = nested(honker_web::Dashboard::new(h).read_only(true));
    let (_, page) = get(&read_only, "/ops/queues/emails").await;
    assert!(
        !page.contains("method=post"),
        "a read-only page has no buttons"
    );
}

async fn post_body(app: &Router, uri: &str, body: &str) -> (StatusCode, String) {
    let req = Request::post(uri)
        .header(header::HOST, "dash.local")
        .header(header::ORIGIN, "http://dash.local")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_string()))
        .unwrap();
    sent(app, req).await
}

#[tokio::test]
async fn a_search_finds_jobs_by_name_or_argument_text_and_acts_on_what_it_found() {
    let f = fixture();
    let call = |name: &str, to: &str| {
        honker_core::task_payload(name, &serde_json::json!({ "to": to })).unwrap()
    };
    let one = EnqueueOptions::default().max_attempts(1);
    let ann = honker_core::enqueue(&f.c, "emails", &call("send_email", "ann@x"), &one).unwrap();
    let bob = honker_core::enqueue(&f.c, "emails", &call("send_email", "bob@x"), &one).unwrap();
    let app = nested(honker_web::Dashboard::new(
        honker_actors::Honker::open(&f.path).unwrap(),
    ));
    let (_, page) = get(&app, "/ops/queues/emails?state=pending&q=ann%40").await;
    assert!(
        page.contains("name=q value=\"ann@\""),
        "the box keeps the search"
    );
    assert!(page.contains(&format!("data-job=\"{ann}\"")), "{page}");
    assert!(!page.contains(&format!("data-job=\"{bob}\"")));
    assert!(
        !page.contains(&format!("data-job=\"{}\"", f.pending)),
        "a raw payload without it"
    );
    let (_, page) = get(&app, "/ops/queues/emails?state=pending&q=send_email").await;
    assert!(
        page.contains(&format!("data-job=\"{ann}\""))
            && page.contains(&format!("data-job=\"{bob}\""))
    );

    // Dead jobs: found by argument text; "all found" acts on those alone.
    let claimed =
        honker_core::claim_batch(&f.c, "emails", "w", 10, Duration::from_secs(60)).unwrap();
    for j in &claimed {
        if j.id == ann || j.id == bob {
            honker_core::fail(&f.c, "w", j.lease(), "smtp").unwrap();
        } else {
            honker_core::release(&f.c, "w", &[j.lease()]).unwrap();
        }
    }
    let (_, dead) = get(&app, "/ops/dead?q=bob%40").await;
    assert!(dead.contains(&format!("data-job=\"{bob}\"")), "{dead}");
    assert!(
        !dead.contains(&format!("data-job=\"{ann}\""))
            && !dead.contains(&format!("data-job=\"{}\"", f.dead))
    );
    assert!(dead.contains("Retry all found"));
    let (status, _) = post_body(&app, "/ops/dead-all/retry?q=bob%40", "back=%2Fdead").await;
    assert!(status.is_redirection());
    let dead_ids: Vec<i64> = honker_core::list_dead(&f.c, "emails", 10, 0)
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert!(dead_ids.contains(&ann) && dead_ids.contains(&f.dead) && !dead_ids.contains(&bob));
}

#[tokio::test]
async fn selected_dead_jobs_are_retried_or_deleted_together() {
    let f = fixture();
    let one = EnqueueOptions::default().max_attempts(1);
    let mut more = Vec::new();
    for _ in 0..2 {
        let id = honker_core::enqueue(&f.c, "emails", "3", &one).unwrap();
        let j = honker_core::claim_batch(&f.c, "emails", "w", 3, Duration::from_secs(60)).unwrap();
        let mine = j.iter().find(|j| j.id == id).unwrap();
        honker_core::fail(&f.c, "w", mine.lease(), "x").unwrap();
        for other in j.iter().filter(|j| j.id != id) {
            honker_core::release(&f.c, "w", &[other.lease()]).unwrap();
        }
        more.push(id);
    }
    let h = honker_actors::Honker::open(&f.path).unwrap();
    let app = nested(honker_web::Dashboard::new(h.clone()));
    let (_, dead) = get(&app, "/ops/dead").await;
    assert!(
        dead.contains("form=bulk") && dead.contains("Retry selected"),
        "{dead}"
    );
    assert!(dead.contains(&format!("name=id value={} form=bulk", f.dead)));

    let body = format!("back=%2Fdead&id={}&id={}&id=999", f.dead, more[0]);
    let (status, to) = post_body(&app, "/ops/dead-selected/retry", &body).await;
    assert!(status.is_redirection(), "{status}");
    assert!(
        to.contains("2%20dead%20job%28s%29%20requeued")
            && to.contains("nothing%20done%29%3A%20999"),
        "{to}"
    );
    assert!(honker_core::get_job(&f.c, f.dead).unwrap().is_some());
    assert!(honker_core::get_job(&f.c, more[0]).unwrap().is_some());
    assert!(
        honker_core::get_dead(&f.c, more[1]).unwrap().is_some(),
        "not selected"
    );

    let (_, to) = post_body(
        &app,
        "/ops/dead-selected/delete",
        &format!("id={}", more[1]),
    )
    .await;
    assert!(to.contains("1%20dead%20job%28s%29%20deleted"), "{to}");
    assert!(honker_core::get_dead(&f.c, more[1]).unwrap().is_none());
    let (_, to) = post_body(&app, "/ops/dead-selected/delete", "back=%2Fdead").await;
    assert!(to.contains("No%20job%20selected"), "{to}");

    let read_only = nested(honker_web::Dashboard::new(h).read_only(true));
    let (_, dead) = get(&read_only, "/ops/dead").await;
    assert!(
        !dead.contains("form=bulk"),
        "a read-only page selects nothing"
    );
    let (status, _) = post_body(
        &read_only,
        "/ops/dead-selected/delete",
        &format!("id={}", more[0]),
    )
    .await;
    assert!(!status.is_redirection() && !status.is_success(), "{status}");
}

/// 51 dead jobs of `queue` whose payload holds `text`.
fn dead_batch(c: &honker_core::rusqlite::Connection, queue: &str, text: &str) -> Vec<i64> {
    let one = EnqueueOptions::default().max_attempts(1);
    let ids: Vec<i64> = (0..51)
        .map(|i| honker_core::enqueue(c, queue, &format!(r#"{{"{text}":{i}}}"#), &one).unwrap())
        .collect();
    for j in honker_core::claim_batch(c, queue, "w", 51, Duration::from_secs(60)).unwrap() {
        honker_core::fail(c, "w", j.lease(), "x").unwrap();
    }
    ids
}

#[tokio::test]
async fn a_search_pages_fifty_at_a_time_and_its_links_keep_it() {
    let f = fixture();
    let ids = dead_batch(&f.c, "bulk", "needle");
    let one = EnqueueOptions::default();
    for i in 0..51 {
        honker_core::enqueue(&f.c, "bulk", &format!(r#"{{"needle":{i}}}"#), &one).unwrap();
    }
    honker_core::enqueue(&f.c, "bulk", r#"{"hay":1}"#, &one).unwrap();
    let app = nested(honker_web::Dashboard::new(
        honker_actors::Honker::open(&f.path).unwrap(),
    ));
    for state in ["pending", "dead"] {
        let (_, page) = get(&app, &format!("/ops/queues/bulk?state={state}&q=needle")).await;
        assert_eq!(
            page.matches("<tr data-job=").count(),
            50,
            "{state}: fifty on a page"
        );
        assert!(
            page.contains(&format!(
                "/ops/queues/bulk?state={state}&amp;q=needle&amp;page=1\" rel=next"
            )),
            "{state}: the next page keeps the search: {page}"
        );
        assert!(
            page.contains("q=needle\">"),
            "{state}: the actions come back to the search"
        );
        let (_, last) = get(
            &app,
            &format!("/ops/queues/bulk?state={state}&q=needle&page=1"),
        )
        .await;
        assert_eq!(
            last.matches("<tr data-job=").count(),
            1,
            "{state}: the 51st"
        );
        assert!(!last.contains("rel=next"), "{state}: no page after it");
    }
    // Without a search: every pending job, fifty a page.
    let (_, all) = get(&app, "/ops/queues/bulk?state=pending").await;
    assert_eq!(all.matches("<tr data-job=").count(), 50);
    assert!(
        all.contains("/ops/queues/bulk?state=pending&amp;page=1\" rel=next"),
        "{all}"
    );
    let (_, rest) = get(&app, "/ops/queues/bulk?state=pending&page=1").await;
    assert_eq!(
        rest.matches("<tr data-job=").count(),
        2,
        "51 found and 1 not"
    );
    // The dead page: scoped by queue; the rest of the file is not listed.
    let (_, dead) = get(&app, "/ops/dead?queue=bulk&q=needle&page=1").await;
    assert_eq!(dead.matches("<tr data-job=").count(), 1);
    let (_, other) = get(&app, "/ops/dead?queue=emails").await;
    assert!(other.contains(&format!("data-job=\"{}\"", f.dead)));
    assert!(
        !other.contains(&format!("data-job=\"{}\"", ids[0])),
        "another queue's dead job"
    );
}

#[tokio::test]
async fn retry_all_of_one_queue_leaves_the_other_queues_dead_jobs() {
    let f = fixture();
    let ids = dead_batch(&f.c, "bulk", "needle");
    let app = nested(honker_web::Dashboard::new(
        honker_actors::Honker::open(&f.path).unwrap(),
    ));
    let (status, to) = post_body(
        &app,
        "/ops/dead-all/retry?queue=bulk",
        "back=%2Fqueues%2Fbulk%3Fstate%3Ddead",
    )
    .await;
    assert!(status.is_redirection());
    assert!(
        to.starts_with("/ops/queues/bulk?state=dead"),
        "back where it was: {to}"
    );
    assert!(to.contains("51%20dead%20job%28s%29%20requeued"), "{to}");
    assert!(honker_core::get_job(&f.c, ids[50]).unwrap().is_some());
    assert!(
        honker_core::get_dead(&f.c, f.dead).unwrap().is_some(),
        "another queue's"
    );
}

#[tokio::test]
async fn selected_jobs_come_back_to_the_page_they_were_ticked_on_and_are_named() {
    let f = fixture();
    let app = nested(honker_web::Dashboard::new(
        honker_actors::Honker::open(&f.path).unwrap(),
    ));
    let body = format!("id={}&back=%2Fqueues%2Femails%3Fstate%3Ddead", f.dead);
    let (_, to) = post_body(&app, "/ops/dead-selected/retry", &body).await;
    assert!(to.starts_with("/ops/queues/emails?state=dead"), "{to}");
    assert!(
        to.contains(&format!("requeued%3A%20{}.", f.dead)),
        "names the job: {to}"
    );
}

#[tokio::test]
async fn the_running_page_lists_running_jobs_with_their_worker() {
    let f = fixture();
    let got = honker_core::claim_batch(&f.c, "emails", "w-7", 1, Duration::from_secs(60)).unwrap();
    let app = nested(honker_web::Dashboard::new(
        honker_actors::Honker::open(&f.path).unwrap(),
    ));
    let (status, page) = get(&app, "/ops/running").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!("data-job=\"{}\"", got[0].id)) && page.contains("w-7"),
        "{page}"
    );
}

#[tokio::test]
async fn a_running_job_says_when_its_claim_ends_and_a_waiting_one_when_it_is_due() {
    let f = fixture();
    let got = honker_core::claim_batch(&f.c, "emails", "w", 1, Duration::from_secs(600)).unwrap();
    let app = nested(honker_web::Dashboard::new(
        honker_actors::Honker::open(&f.path).unwrap(),
    ));
    let (_, running) = get(&app, "/ops/queues/emails?state=running").await;
    let at = running
        .find(&format!("data-job=\"{}\"", got[0].id))
        .expect("its row");
    let row = running[at..].split("</tr>").next().unwrap();
    assert!(row.contains("claim ends in"), "{row}");
    honker_core::enqueue(&f.c, "emails", "3", &Default::default()).unwrap();
    let (_, pending) = get(&app, "/ops/queues/emails?state=pending").await;
    assert!(
        pending.contains("due ") && !pending.contains("claim ends"),
        "{pending}"
    );
}

/// The dashboard on a PostgreSQL store (the server `HONKER_PG_URL`
/// names): its pages and actions work as on a file, and the URL's
/// password never reaches a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_postgres),
    ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one)"
)]
async fn the_dashboard_works_on_a_postgres_store_and_never_shows_its_password() {
    use honker_actors::postgres::{PgOptions, PgStore};
    let url = std::env::var("HONKER_PG_URL").expect("HONKER_PG_URL (.ci/run sets it)");
    let secret = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .and_then(|u| u.split(':').nth(1))
        .unwrap_or("")
        .to_string();
    let schema = format!("web_{}", std::process::id());
    let options = PgOptions {
        schema: schema.clone(),
        ..PgOptions::default()
    };
    let h = honker_actors::Honker::with_store(std::sync::Arc::new(
        PgStore::open_with(&url, options).unwrap(),
    ));
    let q = h.queue("emails");
    let one = EnqueueOptions::default().max_attempts(1);
    let dead = q
        .enqueue(&serde_json::json!({"to": "x"}), one)
        .await
        .unwrap();
    let got = q.claim_batch("w", 1).await.unwrap();
    assert!(q.fail("w", got[0].lease(), "smtp down").await.unwrap());
    let pending = q.enqueue(&2, Default::default()).await.unwrap();
    let app = nested(honker_web::Dashboard::new(h.clone()));
    let same = Some("http://dash.local");
    let mut pages = String::new();
    for uri in [
        "/ops",
        "/ops/dead",
        "/ops/queues/emails?state=dead",
        "/ops/running",
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        pages.push_str(&body);
    }
    let (status, job) = get(&app, &format!("/ops/jobs/{dead}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(job.contains("smtp down"), "the dead job's error");
    pages.push_str(&job);
    assert!(
        pages.contains("data-queue=\"emails\"") && pages.contains(&format!("data-job=\"{dead}\""))
    );
    assert!(
        !secret.is_empty() && !pages.contains(&secret),
        "the password reached a page"
    );
    assert!(
        pages.contains(&format!("schema {schema}")),
        "the store is named"
    );
    let (_, to) = post(&app, &format!("/ops/dead/{dead}/retry"), same).await;
    assert!(to.contains("requeued"), "{to}");
    assert!(h.store().job(dead).await.unwrap().is_some());
    let (_, to) = post(&app, &format!("/ops/jobs/{pending}/cancel"), same).await;
    assert!(to.contains("cancelled"), "{to}");
    assert_eq!(
        h.store()
            .dead_job(pending)
            .await
            .unwrap()
            .and_then(|d| d.last_error)
            .as_deref(),
        Some("cancelled")
    );
    post(&app, "/ops/queues/emails/pause", same).await;
    assert!(h.store().queue_controls("emails").await.unwrap().paused);
}
