//! The figures Tollgate exports at `GET /metrics`, in Prometheus' text format:
//! requests by route and status with their latency, upstream latency by model,
//! limit rejections by kind, credits spent by model and streams in flight.
//!
//! Each app has its own registry rather than the process-global recorder, so
//! several servers in one process (the tests) each count only their own.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics::{Key, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::{api_error::ApiError, request_meta::RequestMeta, startup::AppState};

const META: Metadata<'static> = Metadata::new("tollgate", Level::INFO, None);
/// Seconds; from a fast refusal to a long generation.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

const REQUESTS: &str = "tollgate_http_requests_total";
const REQUEST_SECONDS: &str = "tollgate_http_request_duration_seconds";
const UPSTREAM_SECONDS: &str = "tollgate_upstream_duration_seconds";
const REJECTIONS: &str = "tollgate_limit_rejections_total";
const CREDITS: &str = "tollgate_credits_spent_micros_total";
const STREAMS: &str = "tollgate_active_streams";

#[derive(Clone)]
pub struct Instruments {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Instruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instruments").finish_non_exhaustive()
    }
}

impl Default for Instruments {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(pairs: &[(&'static str, String)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(name, value)| Label::new(*name, value.clone()))
        .collect()
}

impl Instruments {
    pub fn new() -> Self {
        // Buckets make the latencies Prometheus histograms; only an empty list fails.
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let described = |name: &'static str, unit: Unit, text: &'static str| {
            (
                SharedString::from(name),
                Some(unit),
                SharedString::from(text),
            )
        };
        for (name, unit, text) in [
            described(
                REQUESTS,
                Unit::Count,
                "HTTP requests by route, method and status.",
            ),
            described(
                REJECTIONS,
                Unit::Count,
                "Model API calls refused by a rate limit, by limit.",
            ),
            described(
                CREDITS,
                Unit::Count,
                "Credits charged for model calls, in micro-credits, by model.",
            ),
        ] {
            recorder.describe_counter(name.into(), unit, text);
        }
        recorder.describe_histogram(
            REQUEST_SECONDS.into(),
            Some(Unit::Seconds),
            "Time to the response head, by route.".into(),
        );
        recorder.describe_histogram(
            UPSTREAM_SECONDS.into(),
            Some(Unit::Seconds),
            "Time until an upstream answered (the first chunk, for streams), by model.".into(),
        );
        recorder.describe_gauge(
            STREAMS.into(),
            Some(Unit::Count),
            "Model answers being streamed now.".into(),
        );
        let handle = recorder.handle();
        Self {
            recorder: Arc::new(recorder),
            handle,
        }
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> metrics::Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &META)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> metrics::Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &META)
    }

    pub fn request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let route = route.to_owned();
        self.counter(
            REQUESTS,
            labels(&[
                ("route", route.clone()),
                ("method", method.to_owned()),
                ("status", status.to_string()),
            ]),
        )
        .increment(1);
        self.histogram(REQUEST_SECONDS, labels(&[("route", route)]))
            .record(elapsed.as_secs_f64());
    }

    pub fn upstream(&self, model: &str, elapsed: Duration) {
        self.histogram(UPSTREAM_SECONDS, labels(&[("model", model.to_owned())]))
            .record(elapsed.as_secs_f64());
    }

    pub fn limit_rejection(&self, limit: &str) {
        self.counter(REJECTIONS, labels(&[("limit", limit.to_owned())]))
            .increment(1);
    }

    pub fn credits_spent(&self, model: &str, micros: i64) {
        if let Ok(micros) = u64::try_from(micros) {
            self.counter(CREDITS, labels(&[("model", model.to_owned())]))
                .increment(micros);
        }
    }

    /// Counts a stream in flight until the guard is dropped.
    pub fn stream(&self) -> StreamGuard {
        let gauge = self
            .recorder
            .register_gauge(&Key::from_name(STREAMS), &META);
        gauge.increment(1.0);
        StreamGuard(gauge)
    }

    /// Folds the samples recorded since the last upkeep into the histograms;
    /// the server runs it every few seconds and before each scrape.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// A stream in flight; dropping it takes it off the gauge.
pub struct StreamGuard(metrics::Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Middleware on matched routes: counts each request under its route template
/// (never the raw path, which would make a series per id).
pub async fn record_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    state.instruments.request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// A request method as a label: one of HTTP's own, or `other`. Any token is
/// a method to the HTTP stack, so a caller sending made-up ones would
/// otherwise make a series (and its histogram) for each, never freed.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

/// `GET /metrics`, for the addresses in `TOLLGATE_METRICS_ALLOW` only, and
/// never to a web page's script or frame: a page whose name an attacker
/// points at 127.0.0.1 (DNS rebinding) is "same-origin" to the browser and
/// would read them from the operator's own machine. A scraper or curl sends
/// no `Sec-Fetch-Site`; an address typed in the browser sends `none`.
pub async fn metrics(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: axum::http::HeaderMap,
) -> Response {
    let from_a_page = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() != b"none");
    if from_a_page {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "metrics_not_allowed",
            "Metrics are not served to web pages; scrape them, or open the address directly.",
        )
        .into_response();
    }
    let allowed = meta.client_ip.is_some_and(|ip| {
        state
            .config
            .metrics_allow
            .iter()
            .any(|net| net.contains(&ip))
    });
    if !allowed {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "metrics_not_allowed",
            "Metrics are served only to the addresses in TOLLGATE_METRICS_ALLOW.",
        )
        .into_response();
    }
    state.instruments.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.instruments.render(),
    )
        .into_response()
}
