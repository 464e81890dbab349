//! Bytes per item on the wire: the messages a collector produces to Kafka (and writes to its disk
//! buffer), in both wire encodings, against the same items as an OTLP protobuf request compressed
//! with zstd (the baseline OTel-Arrow compares with; it reports 30% fewer bytes for traces).

use arrow::array::RecordBatch;
use meridian_collector::otlp::ExportRequest;
use meridian_collector::wire::{encode_bounded, Encoding};

use super::figures::Figures;
use super::payload::{gateway_logs, gateway_metrics, gateway_request};

/// Batches measured per size; the figures are their totals.
const SEEDS: u64 = 8;

/// Prints, per signal and batch size, bytes/item of OTLP+zstd and of both encodings.
pub fn run(batches: &[usize], zstd_level: i32, figures: &mut Figures) -> anyhow::Result<()> {
    println!("signal   items/batch  otlp+zstd B/item  encoding 1 B/item  encoding 2 B/item  2 vs otlp  (zstd level {zstd_level}, {SEEDS} batches each)");
    for &size in batches {
        signal("spans", size, zstd_level, figures, |seed| {
            gateway_request(size, seed)
        })?;
        signal("points", size, zstd_level, figures, |seed| {
            gateway_metrics(size, seed)
        })?;
        signal("logs", size, zstd_level, figures, |seed| {
            gateway_logs(size, seed)
        })?;
    }
    Ok(())
}

/// Measures one signal at one batch size; `items` names the figures (`spans_1000_…`).
fn signal<R: ExportRequest>(
    items: &str,
    size: usize,
    zstd_level: i32,
    figures: &mut Figures,
    request: impl Fn(u64) -> R,
) -> anyhow::Result<()> {
    let (mut otlp, mut ipc, mut columnar, mut count) = (0usize, 0usize, 0usize, 0usize);
    let mut converted_batches = Vec::new();
    for seed in 0..SEEDS {
        let request = request(seed);
        otlp += zstd::bulk::compress(&request.encode_to_vec(), zstd_level)?.len();
        let converted = request.to_arrow("us-east-1")?;
        count += converted.batch.num_rows();
        converted_batches.push(converted.batch.clone());
        // Exactly what the Kafka sink sends (no message limit here).
        ipc += bytes(Encoding::ArrowIpc, &converted.batch)?;
        columnar += bytes(Encoding::Columnar, &converted.batch)?;
    }
    let per = |n: usize| n as f64 / count.max(1) as f64;
    let (o, a, c) = (per(otlp), per(ipc), per(columnar));
    println!(
        "{items:<8} {size:>11}  {o:>16.1}  {a:>17.1}  {c:>17.1}  {:>9.3}",
        c / o
    );
    figures.add(format!("{items}_{size}_otlp_zstd_bytes_per_item"), o);
    figures.add(format!("{items}_{size}_encoding1_bytes_per_item"), a);
    figures.add(format!("{items}_{size}_encoding2_bytes_per_item"), c);
    figures.add(
        format!("{items}_{size}_encoding1_ratio_vs_otlp_zstd"),
        a / o,
    );
    figures.add(format!("{items}_{size}_ratio_vs_otlp_zstd"), c / o);
    // CPU: encoding (the collector, once per batch) and decoding (the analyzer), one core.
    let mut cost = Vec::new();
    for encoding in [Encoding::ArrowIpc, Encoding::Columnar] {
        let (encode, decode) = cpu(encoding, &converted_batches)?;
        let n = encoding.code();
        figures.add(
            format!("{items}_{size}_encoding{n}_encode_ns_per_item"),
            encode,
        );
        figures.add(
            format!("{items}_{size}_encoding{n}_decode_ns_per_item"),
            decode,
        );
        cost.push((encode, decode));
    }
    println!(
        "{:<8} {:>11}  ns/item: encode {:.0} → {:.0} ({:.2}×), decode {:.0} → {:.0} ({:.2}×)  (encoding 1 → 2)",
        "", "", cost[0].0, cost[1].0, cost[1].0 / cost[0].0, cost[0].1, cost[1].1, cost[1].1 / cost[0].1
    );
    if std::env::var_os("MERIDIAN_WIRE_COLUMNS").is_some() {
        columns(&request(0).to_arrow("us-east-1")?.batch, zstd_level)?;
    }
    Ok(())
}

/// Nanoseconds per item to encode and to decode `batches` in `encoding`: best of three rounds
/// of at least 0.2 s each.
fn cpu(encoding: Encoding, batches: &[RecordBatch]) -> anyhow::Result<(f64, f64)> {
    let items: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let schema = batches.first().map(RecordBatch::schema);
    let Some(schema) = schema else {
        return Ok((0.0, 0.0));
    };
    let encoded = batches
        .iter()
        .map(|b| meridian_collector::wire::encode(encoding, std::slice::from_ref(b)))
        .collect::<Result<Vec<_>, _>>()?;
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let (start, mut rounds) = (std::time::Instant::now(), 0usize);
            while start.elapsed().as_secs_f64() < 0.2 {
                f()?;
                rounds += 1;
            }
            best = best.min(start.elapsed().as_secs_f64() * 1e9 / (rounds * items.max(1)) as f64);
        }
        Ok(best)
    };
    let encode = time(&mut || {
        for b in batches {
            std::hint::black_box(meridian_collector::wire::encode(
                encoding,
                std::slice::from_ref(b),
            )?);
        }
        Ok(())
    })?;
    let decode = time(&mut || {
        for bytes in &encoded {
            std::hint::black_box(meridian_collector::wire::decode(encoding, &schema, bytes)?);
        }
        Ok(())
    })?;
    Ok((encode, decode))
}

fn bytes(encoding: Encoding, batch: &RecordBatch) -> anyhow::Result<usize> {
    Ok(encode_bounded(encoding, batch, usize::MAX)?
        .iter()
        .map(|(_, bytes)| bytes.len())
        .sum())
}

/// Per wire column of encoding 2, its bytes per row compressed alone (a column with one value
/// does not travel at all; its figure here is the cost of an IPC column).
fn columns(batch: &RecordBatch, zstd_level: i32) -> anyhow::Result<()> {
    for (field, column) in meridian_collector::wire::columns::to_wire(batch)? {
        let one = RecordBatch::try_new(
            std::sync::Arc::new(arrow::datatypes::Schema::new(vec![field.clone()])),
            vec![column],
        )?;
        let raw = meridian_collector::ipc::encode_uncompressed(&[one])?;
        let z = zstd::bulk::compress(&raw, zstd_level)?.len();
        println!(
            "      {:<40} {:>8.2} B/row ({:?})",
            field.name(),
            z as f64 / batch.num_rows().max(1) as f64,
            field.data_type()
        );
    }
    Ok(())
}
