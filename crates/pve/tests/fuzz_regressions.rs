//! Inputs the `propstring` fuzz target (fuzz/, docs/fuzzing.md) found, each named
//! after its libFuzzer artifact. Fuzz input format: first line the config key, the
//! rest the value.

use labwright_pve::propstring::{DRIVE, GENERIC, PropError, PropertyString};
use labwright_pve::vmconfig::Drive;

/// Artifact input `sc.i2\n\x0c\x0c==,`: the key of `\x0c\x0c==` is blank (form feeds
/// only). `parse` accepted it, but `set` refuses blank keys, so the value could not be
/// printed back (the typed helpers failed with `Unprintable` on a value they had just
/// parsed). A blank key is now refused on parse, like an empty one.
#[test]
fn crash_b2b3a2b038a53a88c71dcd15d43ad3ecae0e34fa() {
    assert_eq!(
        PropertyString::parse("\u{c}\u{c}==,", &GENERIC),
        Err(PropError::MissingKey)
    );
    assert_eq!(
        PropertyString::parse("local-lvm:vm-100-disk-0,  =1", &DRIVE),
        Err(PropError::MissingKey)
    );
    assert!(Drive::parse("local-lvm:vm-100-disk-0, =1").is_err());
    // Keys with surrounding blanks still parse and print back.
    let ps = PropertyString::parse(" aio =native", &DRIVE).expect("parses");
    assert_eq!(
        PropertyString::parse(&ps.to_canonical_string(), &DRIVE),
        Ok(ps)
    );
}
