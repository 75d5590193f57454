//! The shipped probe files, built into the binary so `probe demo` and `probe sandbox`
//! work from any folder. The same files live in `probes/` for people to read and copy.

pub const PROBES: &[(&str, &str)] = &[
    ("health.toml", include_str!("../probes/health.toml")),
    (
        "ios-purchase.toml",
        include_str!("../probes/ios-purchase.toml"),
    ),
    (
        "android-purchase.toml",
        include_str!("../probes/android-purchase.toml"),
    ),
    (
        "entitlement-sync.toml",
        include_str!("../probes/entitlement-sync.toml"),
    ),
    (
        "ios-notifications.toml",
        include_str!("../probes/ios-notifications.toml"),
    ),
];

/// Writes the shipped probes into `dir`.
pub fn write_probes(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in PROBES {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}
