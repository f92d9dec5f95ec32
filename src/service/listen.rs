//! The service's HTTP endpoint: `/healthz` for whoever watches the service, `/metrics` for
//! Prometheus, and `/hooks/<flow>` for flows started by a webhook. It answers on loopback
//! unless the user binds another address on purpose.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;

/// Binds `addr`; the address bound (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "; another program uses that port: give the service another with --listen 127.0.0.1:PORT"
            }
            _ => "",
        };
        format!("cannot listen on {addr}: {e}{hint}")
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    Ok((listener, bound))
}

/// The most a webhook body may hold before a flow's own limit is even looked at.
pub const BODY_CEILING: usize = 16 << 20;

/// A webhook request, for the service to check and answer.
pub struct Hook {
    /// What follows `/hooks/`, percent-decoded.
    pub flow: String,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub body: Bytes,
    /// The status and the words to answer with.
    pub reply: oneshot::Sender<(StatusCode, String)>,
}

/// Answers requests until `stop`; webhooks go to `hooks`.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    hooks: mpsc::Sender<Hook>,
    stop: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("the service endpoint could not take a connection: {e}");
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        let hooks = hooks.clone();
        tokio::spawn(async move {
            let answer = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (metrics, hooks) = (metrics.clone(), hooks.clone());
                async move {
                    let response = match request.uri().path().strip_prefix("/hooks/") {
                        Some(_) if request.method() == Method::POST => hook(request, &hooks).await,
                        _ => answer(&request, &metrics),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), answer)
                .await
            {
                tracing::debug!("a connection to the service endpoint ended: {e}");
            }
        });
    }
}

/// Reads a webhook request and hands it to the service, which checks it.
async fn hook(request: Request<Incoming>, hooks: &mpsc::Sender<Hook>) -> Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
    let path = request.uri().path().trim_start_matches("/hooks/");
    let flow = percent_decode(path);
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (timestamp, signature) = (
        header("x-tributary-timestamp"),
        header("x-tributary-signature"),
    );
    let too_big = || {
        reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            text,
            format!("the body is larger than the service takes ({BODY_CEILING} bytes)\n"),
        )
    };
    if header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > BODY_CEILING)
    {
        return too_big();
    }
    let body = match Limited::new(request.into_body(), BODY_CEILING)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return too_big(),
    };
    let (tx, rx) = oneshot::channel();
    let sent = hooks
        .send(Hook {
            flow,
            timestamp,
            signature,
            body,
            reply: tx,
        })
        .await;
    match (sent, rx.await) {
        (Ok(()), Ok((status, words))) => reply(status, text, words + "\n"),
        _ => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            text,
            "the service is stopping\n".into(),
        ),
    }
}

/// `%20` and the like in a flow's name, as a URL carries it.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap() * 16 + hex(l).unwrap()) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(request: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => {
            let body = serde_json::json!({
                "status": "ok",
                "active_flows": metrics.active(),
                "running_runs": metrics.running(),
            });
            reply(StatusCode::OK, "application/json", body.to_string())
        }
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.exposition(),
        ),
        (_, "/healthz" | "/metrics") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET is answered here\n".into(),
        ),
        (_, path) => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            format!(
                "nothing at {path}: the service answers GET /healthz and /metrics, and POST /hooks/<flow>\n"
            ),
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
