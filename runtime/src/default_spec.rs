//! The default `config.json` that `amphi spec` writes.

/// PROVISIONAL until the full default lands: oci-spec's own default.
pub fn default_spec() -> oci_spec::runtime::Spec {
    oci_spec::runtime::Spec::default()
}

/// PROVISIONAL until the full default lands.
pub fn rootless_spec() -> oci_spec::runtime::Spec {
    oci_spec::runtime::Spec::rootless(1000, 1000)
}
