//! Property tests: `parse` must return (never panic) on arbitrary and mutated input.

use migfleet_mig::spec::v1::parse;
use proptest::prelude::*;

const VALID: &str = r#"version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  mixed:
    - device-filter: ["0x20B010DE", "0x20B510DE:0x147E10DE"]
      devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "1g.10gb": 2
        1c.3g.20gb+me: 1
    - {devices: all, mig-enabled: true, mig-devices: {}}
"#;

/// Bytes that steer YAML's scanner into its less common states.
const INTERESTING: &[u8] = b":-[]{}\"'\t\n\r #&*!|>?%@`,.\\0123456789gbcx~";

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Insert(usize, u8),
    Replace(usize, u8),
}

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => proptest::sample::select(INTERESTING),
        1 => any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
    ]
}

fn apply(src: &str, mutations: &[Mutation]) -> String {
    let mut bytes = src.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::Replace(i, b) if len > 0 => {
                if let Some(slot) = bytes.get_mut(i % len) {
                    *slot = b;
                }
            }
            _ => {}
        }
    }
    // `parse` takes `&str`; invalid UTF-8 cannot reach it, so repair it.
    String::from_utf8_lossy(&bytes).into_owned()
}

fn check(src: &str) {
    if let Err(errors) = parse(src) {
        assert!(!errors.is_empty());
        assert!(
            errors.windows(2).all(|w| w[0].pos <= w[1].pos),
            "unsorted: {errors:?}"
        );
        for e in &errors {
            assert!(e.pos.line >= 1 && e.pos.column >= 1, "{e:?}");
            assert!(!e.message.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings(src in any::<String>()) {
        check(&src);
    }

    #[test]
    fn yaml_alphabet_strings(bytes in proptest::collection::vec(byte(), 0..200)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_valid_config(mutations in proptest::collection::vec(mutation(), 1..8)) {
        check(&apply(VALID, &mutations));
    }
}

#[test]
fn unmutated_config_is_valid() {
    assert!(parse(VALID).is_ok(), "{:?}", parse(VALID));
}
