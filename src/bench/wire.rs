//! Bytes per span on the wire: the Arrow IPC message a collector produces to Kafka, against the
//! same spans as an OTLP protobuf request compressed with zstd (the baseline OTel-Arrow compares
//! with; it reports 30% fewer bytes for traces).

use meridian_collector::convert::traces_to_arrow;
use meridian_collector::ipc::encode_bounded;
use prost::Message;

use super::figures::Figures;
use super::payload::gateway_request;

/// Prints, per batch size, bytes/span of both encodings and their ratio.
pub fn run(batches: &[usize], zstd_level: i32, figures: &mut Figures) -> anyhow::Result<()> {
    println!("spans/batch  otlp+zstd B/span  arrow-ipc B/span  ratio  (zstd level {zstd_level}, 8 batches each)");
    for &size in batches {
        let (mut otlp, mut arrow, mut spans) = (0usize, 0usize, 0usize);
        let (mut plain, mut whole) = (0usize, 0usize);
        for seed in 0..8 {
            let request = gateway_request(size, seed);
            let proto = request.encode_to_vec();
            otlp += zstd::bulk::compress(&proto, zstd_level)?.len();
            let converted = traces_to_arrow(&request, "us-east-1")?;
            // Exactly what the Kafka sink sends (no message limit here).
            arrow += encode_bounded(&converted.batch, usize::MAX)?
                .iter()
                .map(|(_, bytes)| bytes.len())
                .sum::<usize>();
            spans += size;
            let raw = meridian_collector::ipc::encode_uncompressed(std::slice::from_ref(
                &converted.batch,
            ))?;
            plain += raw.len();
            whole += zstd::bulk::compress(&raw, zstd_level)?.len();
        }
        let (o, a) = (otlp as f64 / spans as f64, arrow as f64 / spans as f64);
        println!("{size:>11}  {o:>16.1}  {a:>16.1}  {:>5.2}", a / o);
        figures.add(format!("spans_{size}_otlp_zstd_bytes_per_span"), o);
        figures.add(format!("spans_{size}_arrow_bytes_per_span"), a);
        figures.add(format!("spans_{size}_ratio_vs_otlp_zstd"), a / o);
        if std::env::var_os("MERIDIAN_WIRE_COLUMNS").is_some() {
            let request = gateway_request(size, 0);
            let converted = traces_to_arrow(&request, "us-east-1")?;
            let b = &converted.batch;
            for (i, field) in b.schema().fields().iter().enumerate() {
                let one = arrow::array::RecordBatch::try_new(
                    std::sync::Arc::new(arrow::datatypes::Schema::new(vec![field.clone()])),
                    vec![b.column(i).clone()],
                )?;
                let raw = meridian_collector::ipc::encode_uncompressed(&[one])?;
                let z = zstd::bulk::compress(&raw, zstd_level)?.len();
                println!(
                    "      {:<28} {:>8.1} B/span",
                    field.name(),
                    z as f64 / size as f64
                );
            }
        }
        println!(
            "   uncompressed ipc {:.1} B/span, ipc + whole zstd {:.1} B/span ratio {:.2}",
            plain as f64 / spans as f64,
            whole as f64 / spans as f64,
            whole as f64 / otlp as f64
        );
    }
    Ok(())
}
