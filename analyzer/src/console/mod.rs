//! The console: a page the analyzer serves itself at `GET /`, for people without Grafana.
//! Its assets are embedded in the binary (no internet needed); the page reads the same public
//! API as everyone else (`/api/v1/sql`, `/api/v1/routing`, `/api/v1/recommendations`,
//! `/api/v1/alerts`) and polls it, so it adds no server-side state.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file: its name under `/console/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("assets/index.html"),
};

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/console.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/uPlot.min.css"),
    },
    Asset {
        name: "uPlot.LICENSE",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("assets/uPlot.LICENSE"),
    },
];

/// `GET /` (the page) and `GET /console/{file}` (its scripts, styles and licences).
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/console/{file}", get(asset))
}

async fn index() -> Response {
    serve(&INDEX)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => serve(a),
        None => (StatusCode::NOT_FOUND, "no such console file\n").into_response(),
    }
}

/// Assets change only with the binary; revalidating each load keeps upgrades visible.
fn serve(a: &Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, a.content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        a.bytes,
    )
        .into_response()
}
