//! Exit codes, as Ansible's (`ansible`, `ansible-playbook`), so scripts and CI that wrap
//! Ansible can wrap migfleet unchanged. Declared once here.

/// Everything worked.
pub const OK: u8 = 0;
/// A generic error: the request cannot be carried out.
pub const ERROR: u8 = 1;
/// One or more hosts failed.
pub const FAILED_HOSTS: u8 = 2;
/// One or more hosts were unreachable; Ansible also uses 4 for parser errors.
pub const UNREACHABLE: u8 = 4;
/// A file did not parse or validate (Ansible's `AnsibleParserError`).
pub const PARSE_ERROR: u8 = 4;
/// Bad or incomplete command-line options.
pub const BAD_OPTIONS: u8 = 5;
/// The run was interrupted (Ctrl-C), as Ansible's 99.
pub const INTERRUPTED: u8 = 99;
