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
        let decode = decode_rate(&payloads, requests, batch)?;
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
    // What a converted span holds in memory until it is flushed (buffer capacity), against what
    // its data takes: the hot buffer keeps the converter's batches as they are.
    let request = ExportTraceServiceRequest::decode(payloads[0].as_slice())?;
    let batch_out = traces_to_arrow(&request, "bench")?.batch;
    let rows = batch_out.num_rows().max(1) as f64;
    let held = batch_out.get_array_memory_size() as f64 / rows;
    let data = batch_out
        .columns()
        .iter()
        .map(|c| used_bytes(&c.to_data()))
        .sum::<usize>() as f64
        / rows;
    println!("memory per converted span: {held:.0} bytes held, {data:.0} bytes of data");
    figures.add("held_bytes_per_span", held);
    figures.add("data_bytes_per_span", data);
    Ok(())
}

/// Spans/s of prost decoding alone, on this thread: `requests` requests of `batch` spans taken
/// round-robin from `payloads` — the least any OTLP receiver must do.
pub fn decode_rate(
    payloads: &[impl AsRef<[u8]>],
    requests: usize,
    batch: usize,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    for i in 0..requests {
        let r = ExportTraceServiceRequest::decode(payloads[i % payloads.len()].as_ref())?;
        std::hint::black_box(r);
    }
    Ok((batch * requests) as f64 / t.elapsed().as_secs_f64())
}

/// Bytes an array's buffers (and its children's) hold data in, spare capacity left out.
fn used_bytes(data: &arrow::array::ArrayData) -> usize {
    data.buffers().iter().map(|b| b.len()).sum::<usize>()
        + data.nulls().map_or(0, |n| n.buffer().len())
        + data.child_data().iter().map(used_bytes).sum::<usize>()
}
