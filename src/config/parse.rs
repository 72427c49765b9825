use super::{Config, ConfigErrors, Source};

pub(super) fn parse(_text: &str, _source: Source) -> Result<Config, ConfigErrors> {
    todo!("config parser")
}
