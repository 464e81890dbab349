//! The traffic model of the demo's gateways: which routes are called, how long they take and
//! how they fail, healthy or during an incident. Shared by the live demo (through the
//! OpenTelemetry SDK) and the generated datasets of the benchmarks.

use rand::Rng;

/// A route the gateway serves: method, route template, upstream service, typical latency.
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Route template (`http.route`).
    pub route: &'static str,
    /// The upstream service; `gateway` for routes the gateway answers itself.
    pub upstream: &'static str,
    /// Median latency when healthy, ms.
    median_ms: f64,
    /// Share of the traffic.
    weight: u32,
}

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        route: "/api/users/{id}",
        upstream: "users",
        median_ms: 18.0,
        weight: 30,
    },
    Route {
        method: "GET",
        route: "/api/catalog/search",
        upstream: "catalog",
        median_ms: 45.0,
        weight: 25,
    },
    Route {
        method: "POST",
        route: "/api/orders",
        upstream: "orders",
        median_ms: 80.0,
        weight: 15,
    },
    Route {
        method: "GET",
        route: "/api/orders/{id}",
        upstream: "orders",
        median_ms: 25.0,
        weight: 15,
    },
    Route {
        method: "POST",
        route: "/api/payments",
        upstream: "payments",
        median_ms: 120.0,
        weight: 10,
    },
    Route {
        method: "GET",
        route: "/healthz",
        upstream: "gateway",
        median_ms: 1.0,
        weight: 5,
    },
];

/// What is wrong in a region right now.
#[derive(Clone, Copy, Debug, Default)]
pub struct Condition {
    /// Latency multiplier (1 = healthy).
    pub latency_factor: f64,
    /// Extra probability of a 5xx answer.
    pub error_rate: f64,
}

/// One simulated request.
pub struct Request {
    /// The route called.
    pub route: &'static Route,
    /// Its latency, ms.
    pub ms: f64,
    /// Its HTTP status.
    pub status: i64,
    /// The concrete path (`url.path`).
    pub path: String,
}

impl Request {
    /// Draws a request under `condition`.
    pub fn simulate(condition: Condition, rng: &mut impl Rng) -> Option<Request> {
        let total: u32 = ROUTES.iter().map(|r| r.weight).sum();
        let mut pick = rng.random_range(0..total);
        let route = ROUTES.iter().find(|r| {
            if pick < r.weight {
                true
            } else {
                pick -= r.weight;
                false
            }
        })?;
        // Log-normal latency around the route's median; the incident stretches it.
        let normal: f64 = (0..6).map(|_| rng.random::<f64>()).sum::<f64>() - 3.0;
        let healthy_route = route.upstream == "gateway";
        let factor = if healthy_route {
            1.0
        } else {
            condition.latency_factor.max(1.0)
        };
        let ms = route.median_ms * factor * (0.45 * normal).exp();
        let base_errors = 0.004;
        let error_p = if healthy_route {
            0.0
        } else {
            base_errors + condition.error_rate
        };
        let status: i64 = if rng.random::<f64>() < error_p {
            *[500, 502, 503, 504]
                .get(rng.random_range(0..4))
                .unwrap_or(&503)
        } else if rng.random::<f64>() < 0.02 {
            404
        } else if route.method == "POST" {
            201
        } else {
            200
        };
        let path = route
            .route
            .replace("{id}", &rng.random_range(1..5000).to_string());
        Some(Request {
            route,
            ms,
            status,
            path,
        })
    }

    /// Whether the gateway answers this route itself (no upstream, never slowed by incidents).
    pub fn healthy_route(&self) -> bool {
        self.route.upstream == "gateway"
    }
}
