//! The ingest benchmark's ceiling: a hello-world hyper server that reads each POST's body
//! and answers 200 with the same empty TwiML dndgate sends, on the same runtime and
//! HTTP/1.1 settings, doing nothing else.
//!
//! ```text
//! cargo run --release --example bench-hello -- 127.0.0.1:8090
//! ```

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let _body = req.into_body().collect().await?.to_bytes();
    Ok(Response::builder()
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from_static(TWIML.as_bytes())))
        .unwrap())
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    eprintln!("bench-hello listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
