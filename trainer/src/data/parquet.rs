//! Text rows from Apache Parquet (the `parquet` crate's row reader): the text fields
//! must hold strings, the labels field a list of strings or integer ids, or a string
//! split at `label_sep`. Rows are numbered from 1 in errors.

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};

use super::text::{locate, Fields, TextRow};
use super::DataError;

fn describe(f: &Field) -> String {
    let name = match f {
        Field::Null => "null",
        Field::Bool(_) => "a boolean",
        Field::Byte(_) | Field::Short(_) | Field::Int(_) | Field::Long(_) => "an integer",
        Field::UByte(_) | Field::UShort(_) | Field::UInt(_) | Field::ULong(_) => "an integer",
        Field::Float16(_) | Field::Float(_) | Field::Double(_) | Field::Decimal(_) => "a number",
        Field::Str(_) => "a string",
        Field::Bytes(_) => "bytes",
        Field::Date(_) | Field::TimeMillis(_) | Field::TimeMicros(_) => "a date or time",
        Field::TimestampMillis(_) | Field::TimestampMicros(_) => "a timestamp",
        Field::Group(_) => "a struct",
        Field::ListInternal(_) => "a list",
        Field::MapInternal(_) => "a map",
    };
    name.to_string()
}

/// A label as written, from a list element.
fn label(f: &Field) -> Option<String> {
    match f {
        Field::Str(s) => Some(s.clone()),
        Field::Byte(x) => Some(x.to_string()),
        Field::Short(x) => Some(x.to_string()),
        Field::Int(x) => Some(x.to_string()),
        Field::Long(x) => Some(x.to_string()),
        Field::UInt(x) => Some(x.to_string()),
        Field::ULong(x) => Some(x.to_string()),
        _ => None,
    }
}

/// Every row of a Parquet file. The rows its footer declares are checked against the
/// file's size before any is read, and a panic inside the Parquet crate (it has panicked
/// on malformed files) is this file's error, not the process's.
pub fn read_parquet(path: &Path, fields: &Fields) -> Result<Vec<TextRow>, DataError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_rows(path, fields))).unwrap_or_else(|panic| {
        let why = super::panic_message(panic.as_ref()).unwrap_or("no message");
        Err(DataError(format!("{}: not a Parquet file this reader can read ({why})", path.display())))
    })
}

fn read_rows(path: &Path, fields: &Fields) -> Result<Vec<TextRow>, DataError> {
    let err = |e: &dyn std::fmt::Display| DataError(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| err(&e))?;
    let file_bytes = file.metadata().map_err(|e| err(&e))?.len();
    let reader = SerializedFileReader::new(file).map_err(|e| err(&e))?;
    let declared = reader.metadata().file_metadata().num_rows();
    let declared = usize::try_from(declared).map_err(|_| err(&format!("the footer declares {declared} rows")))?;
    super::check_dense(path, None, "declared rows", (declared, 1, std::mem::size_of::<TextRow>()), file_bytes)?;
    let header: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let (text_cols, label_col) = locate(path, &header, fields)?;
    let mut rows = Vec::new();
    for (i, row) in reader.get_row_iter(None).map_err(|e| err(&e))?.enumerate() {
        let row: Row = row.map_err(|e| err(&e))?;
        let line = i + 1;
        let cells: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        let at = |msg: String| DataError(format!("{}: row {line}: {msg}", path.display()));
        let mut text = Vec::new();
        for (&c, name) in text_cols.iter().zip(&fields.text) {
            match cells[c] {
                Field::Str(s) => text.push(s.clone()),
                Field::Null => {}
                other => return Err(at(format!("column `{name}` holds {}, expected strings", describe(other)))),
            }
        }
        let labels = match label_col.map(|c| cells[c]) {
            None | Some(Field::Null) => vec![],
            Some(Field::Str(s)) => {
                s.split(fields.label_sep).map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
            }
            Some(Field::ListInternal(list)) => list
                .elements()
                .iter()
                .map(|e| {
                    label(e).ok_or_else(|| {
                        at(format!(
                            "column `{}` holds a list of {}, expected strings or integer ids",
                            fields.labels,
                            describe(e)
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                let msg = format!("column `{}` holds {}, expected a list or a string", fields.labels, describe(other));
                return Err(at(msg));
            }
        };
        rows.push(TextRow { line, text: text.join(" "), labels });
    }
    Ok(rows)
}
