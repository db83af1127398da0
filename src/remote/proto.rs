//! The remote-write request body: a protobuf `prometheus.WriteRequest` (only `timeseries`, the
//! part every receiver reads), compressed with snappy's block format as the protocol requires.
//!
//! Written by hand: four tiny messages (WriteRequest, TimeSeries, Label, Sample) need a varint
//! and a length prefix, not a code generator and a build-time `protoc`. The integration tests
//! send it to VictoriaMetrics and Prometheus, whose decoders are the reference.

/// One series: its labels (`__name__` included) and samples as (milliseconds, value).
#[derive(Clone, Debug, PartialEq)]
pub struct TimeSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

/// Protobuf wire types used here.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u8, wire: u8) {
    out.push((field << 3) | wire);
}

fn len_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    key(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The protobuf bytes of a `WriteRequest` holding `series`. Labels are written sorted by name,
/// as the protocol requires (receivers may reject or mis-index unsorted ones).
pub fn write_request(series: &[TimeSeries]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ts = Vec::new();
    let mut sub = Vec::new();
    for s in series {
        ts.clear();
        let mut labels: Vec<&(String, String)> = s.labels.iter().collect();
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, value) in labels {
            sub.clear();
            len_field(&mut sub, 1, name.as_bytes());
            len_field(&mut sub, 2, value.as_bytes());
            len_field(&mut ts, 1, &sub);
        }
        for &(ms, value) in &s.samples {
            sub.clear();
            key(&mut sub, 1, FIXED64);
            sub.extend_from_slice(&value.to_le_bytes());
            key(&mut sub, 2, VARINT);
            // int64 on the wire: two's complement in a varint (timestamps are positive here).
            varint(&mut sub, ms as u64);
            len_field(&mut ts, 2, &sub);
        }
        len_field(&mut out, 1, &ts);
    }
    out
}

/// `series` as the POST body: the request in snappy's block format (not the framed format).
pub fn body(series: &[TimeSeries]) -> Vec<u8> {
    let raw = write_request(series);
    // Only an input over ~4 GB fails; a batch is far smaller (BATCH_MINUTES bounds it).
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_series_is_encoded_byte_for_byte() {
        let s = TimeSeries {
            labels: vec![("site".into(), "a".into()), ("__name__".into(), "m".into())],
            samples: vec![(1000, 2.0)],
        };
        let got = write_request(&[s]);
        // Label{__name__=m}, Label{site=a} (sorted), Sample{value=2.0, timestamp=1000}.
        let mut want = vec![0x0a, 0x28];
        want.extend([0x0a, 0x0d, 0x0a, 0x08]);
        want.extend(b"__name__");
        want.extend([0x12, 0x01, b'm']);
        want.extend([0x0a, 0x09, 0x0a, 0x04]);
        want.extend(b"site");
        want.extend([0x12, 0x01, b'a']);
        want.extend([0x12, 0x0c, 0x09]);
        want.extend(2.0f64.to_le_bytes());
        want.extend([0x10, 0xe8, 0x07]);
        assert_eq!(got, want);
    }

    #[test]
    fn body_is_snappy_block_format_of_the_request() {
        let s = TimeSeries {
            labels: vec![("__name__".into(), "lanmeter_x".into())],
            samples: (0..500).map(|i| (i * 60_000, i as f64)).collect(),
        };
        let raw = write_request(std::slice::from_ref(&s));
        let packed = body(&[s]);
        assert!(packed.len() < raw.len());
        assert_eq!(
            snap::raw::Decoder::new().decompress_vec(&packed).unwrap(),
            raw
        );
    }

    #[test]
    fn large_varints_take_several_bytes() {
        let mut v = Vec::new();
        varint(&mut v, 1_796_535_574_000);
        assert_eq!(v.len(), 6);
        let back = v
            .iter()
            .enumerate()
            .fold(0u64, |acc, (i, b)| acc | (u64::from(b & 0x7f) << (7 * i)));
        assert_eq!(back, 1_796_535_574_000);
    }
}
