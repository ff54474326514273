//! Parquet files for the trainer's test binaries (`trainer`, `fuzz`), written by the
//! `parquet` crate's writer: a `text` string column and a `labels` list<string> column.

use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// The bytes of a Parquet file holding `rows` (text, labels) in one row group.
pub fn bytes<S: AsRef<str>>(rows: &[(S, Vec<S>)]) -> Vec<u8> {
    let schema = parse_message_type(
        "message rows { REQUIRED BINARY text (UTF8); OPTIONAL group labels (LIST) { REPEATED group list { OPTIONAL BINARY element (UTF8); } } }",
    )
    .unwrap();
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, schema.into(), WriterProperties::builder().build().into()).unwrap();
    let mut group = w.next_row_group().unwrap();
    let texts: Vec<ByteArray> = rows.iter().map(|(t, _)| ByteArray::from(t.as_ref())).collect();
    let mut col = group.next_column().unwrap().unwrap();
    col.typed::<ByteArrayType>().write_batch(&texts, None, None).unwrap();
    col.close().unwrap();
    // Levels: an empty list is def 1; an element is def 3 (list, group, element present).
    let (mut values, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
    for (_, labels) in rows {
        if labels.is_empty() {
            def.push(1);
            rep.push(0);
        }
        for (i, l) in labels.iter().enumerate() {
            values.push(ByteArray::from(l.as_ref()));
            def.push(3);
            rep.push(i16::from(i != 0));
        }
    }
    let mut col = group.next_column().unwrap().unwrap();
    col.typed::<ByteArrayType>().write_batch(&values, Some(&def), Some(&rep)).unwrap();
    col.close().unwrap();
    group.close().unwrap();
    w.close().unwrap();
    out
}
