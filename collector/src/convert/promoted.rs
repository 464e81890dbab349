//! Semantic-convention attributes promoted to columns, with the older names gateways still send.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::KeyValue;

use super::attributes::{as_int, as_text, find};

/// `service.name` from the resource.
pub fn service_name(resource: &[KeyValue]) -> Option<Cow<'_, str>> {
    as_text(find(resource, &["service.name"]))
}

/// `cloud.region`, from the resource or else the item.
pub fn cloud_region<'a>(resource: &'a [KeyValue], item: &'a [KeyValue]) -> Option<Cow<'a, str>> {
    as_text(find(resource, &["cloud.region"]).or_else(|| find(item, &["cloud.region"])))
}

/// `deployment.environment.name` (or the older `deployment.environment`) from the resource.
pub fn deployment_environment(resource: &[KeyValue]) -> Option<Cow<'_, str>> {
    as_text(find(
        resource,
        &["deployment.environment.name", "deployment.environment"],
    ))
}

/// `http.request.method` (older: `http.method`).
pub fn http_method(attrs: &[KeyValue]) -> Option<Cow<'_, str>> {
    as_text(find(attrs, &["http.request.method", "http.method"]))
}

/// `http.route`.
pub fn http_route(attrs: &[KeyValue]) -> Option<Cow<'_, str>> {
    as_text(find(attrs, &["http.route"]))
}

/// `url.path`, or the path of `http.target` / `url.full` / `http.url` (Envoy sends the full URL).
pub fn url_path(attrs: &[KeyValue]) -> Option<Cow<'_, str>> {
    if let Some(p) = as_text(find(attrs, &["url.path"])) {
        return Some(p);
    }
    if let Some(target) = as_text(find(attrs, &["http.target"])) {
        return Some(Cow::Owned(strip_query(&target).to_owned()));
    }
    let full = as_text(find(attrs, &["url.full", "http.url"]))?;
    let after_scheme = full
        .split_once("://")
        .map_or(full.as_ref(), |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    Some(Cow::Owned(strip_query(path).to_owned()))
}

fn strip_query(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or(target)
}

/// `http.response.status_code` (older: `http.status_code`), as a number.
pub fn http_status(attrs: &[KeyValue]) -> Option<i32> {
    as_int(find(
        attrs,
        &["http.response.status_code", "http.status_code"],
    ))
    .and_then(|v| i32::try_from(v).ok())
}

/// `server.address` (older: `net.host.name`, `http.host`).
pub fn server_address(attrs: &[KeyValue]) -> Option<Cow<'_, str>> {
    as_text(find(
        attrs,
        &["server.address", "net.host.name", "http.host"],
    ))
}

/// The service behind the gateway: `peer.service`, or Envoy's `upstream_cluster`.
pub fn peer_service(attrs: &[KeyValue]) -> Option<Cow<'_, str>> {
    as_text(find(
        attrs,
        &["peer.service", "upstream_cluster", "upstream.cluster"],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::builders::kv;

    #[test]
    fn url_path_comes_from_the_full_url_when_no_path_is_given() {
        assert_eq!(
            url_path(&[kv("http.url", "http://h:80/api/x?y=1")]).as_deref(),
            Some("/api/x")
        );
        assert_eq!(
            url_path(&[kv("http.target", "/a?b")]).as_deref(),
            Some("/a")
        );
        assert_eq!(
            url_path(&[kv("url.full", "https://h")]).as_deref(),
            Some("/")
        );
    }

    #[test]
    fn status_accepts_old_names_and_strings() {
        assert_eq!(http_status(&[kv("http.status_code", "503")]), Some(503));
    }
}
