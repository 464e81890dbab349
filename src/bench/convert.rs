//! Conversion cost against the decode it follows.

use std::time::Instant;

use meridian_collector::convert::traces_to_arrow;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::figures::Figures;
use super::payload::gateway_request;

/// Measures decode-only and decode + convert over the same encoded payloads, three rounds each,
/// interleaved so machine noise hits both alike; prints the best round of each and the ratio.
pub fn run(batch: usize, requests: usize, figures: &mut Figures) -> anyhow::Result<()> {
    let payloads: Vec<Vec<u8>> = (0..16)
        .map(|i| gateway_request(batch, i).encode_to_vec())
        .collect();
    let spans = (batch * requests) as f64;
    let mut best_decode = 0f64;
    let mut best_convert = 0f64;
    for round in 0..3 {
        let t = Instant::now();
        for i in 0..requests {
            let r = ExportTraceServiceRequest::decode(payloads[i % payloads.len()].as_slice())?;
            std::hint::black_box(r);
        }
        let decode = spans / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..requests {
            let r = ExportTraceServiceRequest::decode(payloads[i % payloads.len()].as_slice())?;
            let converted = traces_to_arrow(&r, "bench")?;
            std::hint::black_box(converted);
        }
        let convert = spans / t.elapsed().as_secs_f64();
        println!("round {round}: decode-only {decode:>12.0} spans/s   decode+convert {convert:>12.0} spans/s");
        best_decode = best_decode.max(decode);
        best_convert = best_convert.max(convert);
    }
    println!(
        "best: decode-only {best_decode:.0} spans/s, decode+convert {best_convert:.0} spans/s, ratio {:.2} (payload {} bytes/request, {batch} spans)",
        best_convert / best_decode,
        payloads[0].len()
    );
    figures.add("decode_spans_per_s", best_decode);
    figures.add("convert_spans_per_s", best_convert);
    figures.add("convert_ratio_vs_decode", best_convert / best_decode);
    Ok(())
}
