//! The OTLP/JSON decoder + conversion to Arrow, for each signal (the first byte picks it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_collector::otlp::ExportRequest;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

fn run<R: ExportRequest>(body: &[u8]) {
    if let Ok(request) = R::decode_json(body) {
        let _ = request.to_arrow("fuzz");
    }
}

fuzz_target!(|data: &[u8]| {
    meridian_fuzz::quiet_caught_panics();
    let Some((&which, body)) = data.split_first() else { return };
    match which % 3 {
        0 => run::<ExportTraceServiceRequest>(body),
        1 => run::<ExportMetricsServiceRequest>(body),
        _ => run::<ExportLogsServiceRequest>(body),
    }
});
