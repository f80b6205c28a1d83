//! The network id: one rule for every crate that takes one.

/// A network id separates fleets (gossip topic, registry records, key
/// salt): 1–64 characters from `A-Z a-z 0-9 - _ .`.
pub fn validate_network_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        return Ok(());
    }
    Err(format!(
        "network id {id:?}: expected 1-64 characters from A-Z a-z 0-9 - _ ."
    ))
}

#[cfg(test)]
mod tests {
    use super::validate_network_id;

    #[test]
    fn one_rule() {
        assert!(validate_network_id("ghcache").is_ok());
        assert!(validate_network_id("fleet-1.prod_eu").is_ok());
        for bad in ["", "../bad", "a b", &"x".repeat(65)] {
            assert!(validate_network_id(bad).is_err(), "{bad}");
        }
    }
}
