//! `berth certs`: a CA and the webhook's serving certificate for clusters without cert-manager
//! (issue 5). Both keys are ECDSA P-256 made with ring (rcgen); the set is checked the way a
//! client will check it (rustls: the leaf verifies against `ca.crt` for the service's name)
//! before anything is written, and written through temporary files renamed into place, so a
//! failure leaves the old set or none. `--reuse-ca` re-issues only the leaf from an existing CA,
//! so the webhook configurations' `caBundle` stays as it is.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;

use crate::cmd::{print_json, print_text};
use crate::environment::Environment;
use crate::exit::usage;

/// The file names Kubernetes `tls` Secrets and cert-manager use, so the directory can become a
/// Secret as it is.
const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const TLS_CERT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";

/// Backdating `notBefore` a little: a node whose clock runs slightly behind must not see a
/// certificate that is not valid yet.
const BACKDATE: time::Duration = time::Duration::minutes(5);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The webhook's Service name.
    #[arg(long, default_value = "berth-webhook", value_name = "NAME")]
    pub service: String,
    /// The webhook's namespace.
    #[arg(long, default_value = "berth", value_name = "NAME")]
    pub namespace: String,
    /// Another DNS name for the serving certificate (repeatable).
    #[arg(long = "dns", value_name = "NAME")]
    pub dns: Vec<String>,
    /// An IP address for the serving certificate (repeatable).
    #[arg(long = "ip", value_name = "IP")]
    pub ip: Vec<IpAddr>,
    /// Days the serving certificate is valid.
    #[arg(long, default_value_t = 365, value_name = "N")]
    pub days: u32,
    /// Days the CA is valid (replacing it means a new caBundle in the webhook configurations).
    #[arg(long, default_value_t = 3650, value_name = "N")]
    pub ca_days: u32,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
    /// Keep DIR/ca.crt and DIR/ca.key and re-issue only tls.crt and tls.key from them
    /// (renewal: the caBundle does not change). Replaces the old leaf without --force.
    #[arg(long, conflicts_with = "ca_days")]
    pub reuse_ca: bool,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What was written, as printed.
#[derive(Debug, Serialize)]
struct Report {
    dir: PathBuf,
    written: Vec<PathBuf>,
    ca_reused: bool,
    /// The serving certificate's names: DNS names, then IP addresses.
    names: Vec<String>,
    /// RFC 3339, UTC.
    not_after: String,
    /// base64 of ca.crt: the webhook configurations' `clientConfig.caBundle`.
    ca_bundle: String,
}

/// A certificate and its key, PEM.
struct Pair {
    cert: String,
    key: String,
}

pub fn exec(args: Args, _env: &Environment) -> anyhow::Result<ExitCode> {
    let names = serving_names(&args)?;
    if args.days == 0 || (!args.reuse_ca && args.ca_days == 0) {
        return Err(usage("--days and --ca-days must be at least 1"));
    }
    let dir = &args.out;
    let now = time::OffsetDateTime::now_utc();

    let (ca, ca_reused) = if args.reuse_ca {
        let cert = read_text(&dir.join(CA_CERT))?;
        let key = read_text(&dir.join(CA_KEY))?;
        (Pair { cert, key }, true)
    } else {
        refuse_existing(dir, &[CA_CERT, CA_KEY, TLS_CERT, TLS_KEY], args.force)?;
        (make_ca(&args, now)?, false)
    };
    let not_after = now + time::Duration::days(i64::from(args.days));
    let leaf = make_leaf(&ca, &names, now, not_after)
        .with_context(|| format!("cannot issue a certificate for {}", san_text(&names[0])))?;
    verify(&ca.cert, &leaf.cert, &args)?;

    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files = vec![
        (TLS_KEY, leaf.key.as_str(), true),
        (TLS_CERT, &leaf.cert, false),
    ];
    if !ca_reused {
        files.push((CA_KEY, &ca.key, true));
        files.push((CA_CERT, &ca.cert, false));
    }
    let written = write_set(dir, &files)?;

    let report = Report {
        dir: dir.clone(),
        written,
        ca_reused,
        names: names.iter().map(san_text).collect(),
        not_after: rfc3339(not_after)?,
        ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca.cert.as_bytes()),
    };
    if args.json {
        print_json(&report)?;
    } else {
        print_text(&text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn text(report: &Report) -> String {
    let mut out = String::new();
    for path in &report.written {
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    if report.ca_reused {
        out.push_str("kept the CA in place (caBundle unchanged)\n");
    }
    out.push_str(&format!(
        "serving certificate for {} valid until {}\n",
        report.names.join(", "),
        report.not_after
    ));
    out.push_str(&format!("caBundle: {}\n", report.ca_bundle));
    out
}

/// The names the API server may use for the Service, then the user's.
fn serving_names(args: &Args) -> anyhow::Result<Vec<SanType>> {
    for (flag, value) in [
        ("--service", &args.service),
        ("--namespace", &args.namespace),
    ] {
        if !is_dns_label(value) {
            return Err(usage(format!(
                "{flag} {value:?}: not a DNS label (lower case letters, digits and '-', at most \
                 63, starting and ending with a letter or digit)"
            )));
        }
    }
    let (service, namespace) = (&args.service, &args.namespace);
    let mut dns = vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.clone(),
    ];
    for name in &args.dns {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .split('.')
                .enumerate()
                .all(|(index, label)| is_dns_label(label) || (index == 0 && label == "*"));
        if !valid {
            return Err(usage(format!("--dns {name:?}: not a DNS name")));
        }
        if !dns.contains(&name) {
            dns.push(name);
        }
    }
    let mut names = Vec::new();
    for name in dns {
        let name = name
            .try_into()
            .map_err(|error| usage(format!("not a DNS name: {error}")))?;
        names.push(SanType::DnsName(name));
    }
    for ip in &args.ip {
        if !names.contains(&SanType::IpAddress(*ip)) {
            names.push(SanType::IpAddress(*ip));
        }
    }
    Ok(names)
}

fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

fn san_text(name: &SanType) -> String {
    match name {
        SanType::DnsName(name) => name.as_str().to_string(),
        SanType::IpAddress(ip) => ip.to_string(),
        other => format!("{other:?}"),
    }
}

fn make_ca(args: &Args, now: time::OffsetDateTime) -> anyhow::Result<Pair> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("cannot make the CA's key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("berth CA for {}.{}", args.service, args.namespace),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + time::Duration::days(i64::from(args.ca_days));
    let cert = params
        .self_signed(&key)
        .context("cannot make the CA certificate")?;
    Ok(Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn make_leaf(
    ca: &Pair,
    names: &[SanType],
    now: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> anyhow::Result<Pair> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|error| {
        usage(format!(
            "{CA_KEY}: not a PKCS#8 private key ring can use: {error}"
        ))
    })?;
    let (ca_params, ca_not_after) = ca_issuer(&ca.cert)?;
    if not_after > ca_not_after {
        // Clients check every certificate of the chain: the leaf would stop working with its CA.
        return Err(usage(format!(
            "{CA_CERT} expires at {}, before a serving certificate valid until {}: ask for \
             fewer --days (or, for a new CA, more --ca-days)",
            rfc3339(ca_not_after)?,
            rfc3339(not_after)?
        )));
    }
    let names_the_ca = ca_params.key_identifier_method != KeyIdMethod::PreSpecified(Vec::new());
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("cannot make the serving key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, san_text(&names[0]));
    params.subject_alt_names = names.to_vec();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = names_the_ca;
    params.not_before = now - BACKDATE;
    params.not_after = not_after;
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign the serving certificate")?;
    Ok(Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The CA as an issuer for the leaf: its subject as rcgen's name, so the leaf's issuer field
/// matches it byte for byte, and its subject key identifier, so the leaf's authority key
/// identifier names it (openssl looks the issuer up by it). Read with yasna: rcgen's own reader
/// needs its x509-parser feature, a second ASN.1 stack. Single-valued names in UTF8String,
/// PrintableString or IA5String, as openssl and berth write them; anything else is refused
/// rather than re-encoded differently.
fn ca_issuer(pem: &str) -> anyhow::Result<(CertificateParams, time::OffsetDateTime)> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|error| usage(format!("{CA_CERT}: not a PEM certificate: {error}")))?;
    let (ca_not_after, subject, extensions) = yasna::parse_der(&der, |reader| {
        reader.read_sequence(|certificate| {
            let fields = certificate.next().read_sequence(|tbs| {
                tbs.read_optional(|version| {
                    version.read_tagged(yasna::Tag::context(0), |version| version.read_der())
                })?;
                // serialNumber, signature, issuer
                for _ in 0..3 {
                    tbs.next().read_der()?;
                }
                let not_after = tbs.next().read_sequence(|validity| {
                    validity.next().read_der()?;
                    read_time(validity.next())
                })?;
                let subject = tbs.next().read_der()?;
                tbs.next().read_der()?; // subjectPublicKeyInfo
                let mut extensions = None;
                while let Some(field) = tbs.read_optional(|field| field.read_tagged_der())? {
                    if field.tag() == yasna::Tag::context(3) {
                        extensions = Some(field.value().to_vec());
                    }
                }
                Ok((not_after, subject, extensions))
            })?;
            certificate.next().read_der()?;
            certificate.next().read_der()?;
            Ok(fields)
        })
    })
    .map_err(|error| usage(format!("{CA_CERT}: not an X.509 certificate: {error}")))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_subject(&subject)?;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let key_identifier = match extensions {
        Some(extensions) => subject_key_identifier(&extensions)
            .map_err(|error| usage(format!("{CA_CERT}: unreadable extensions: {error}")))?,
        None => None,
    };
    params.key_identifier_method = match key_identifier {
        Some(identifier) => KeyIdMethod::PreSpecified(identifier),
        // No identifier to name: the leaf goes without an authority key identifier.
        None => KeyIdMethod::PreSpecified(Vec::new()),
    };
    Ok((params, ca_not_after))
}

/// An X.509 `Time`: UTCTime before 2050, GeneralizedTime from then on.
fn read_time(reader: yasna::BERReader<'_, '_>) -> yasna::ASN1Result<time::OffsetDateTime> {
    if reader.lookahead_tag()? == yasna::tags::TAG_UTCTIME {
        Ok(*reader.read_utctime()?.datetime())
    } else {
        Ok(*reader.read_generalized_time()?.datetime())
    }
}

/// The subjectKeyIdentifier (2.5.29.14) among a certificate's extensions, if any.
fn subject_key_identifier(extensions: &[u8]) -> yasna::ASN1Result<Option<Vec<u8>>> {
    const SUBJECT_KEY_IDENTIFIER: [u64; 4] = [2, 5, 29, 14];
    let found = yasna::parse_der(extensions, |reader| {
        reader.collect_sequence_of(|extension| {
            extension.read_sequence(|extension| {
                let oid = extension.next().read_oid()?;
                extension.read_optional(|critical| critical.read_bool())?;
                let value = extension.next().read_bytes()?;
                Ok((oid.components().as_slice() == SUBJECT_KEY_IDENTIFIER).then_some(value))
            })
        })
    })?;
    match found.into_iter().flatten().next() {
        Some(value) => yasna::parse_der(&value, |reader| reader.read_bytes()).map(Some),
        None => Ok(None),
    }
}

fn ca_subject(subject: &[u8]) -> anyhow::Result<DistinguishedName> {
    let attributes = yasna::parse_der(subject, |reader| {
        reader.collect_sequence_of(|rdn| {
            let mut attributes = rdn.collect_set_of(|attribute| {
                attribute.read_sequence(|attribute| {
                    let oid = attribute.next().read_oid()?;
                    let value = attribute.next().read_tagged_der()?;
                    Ok((oid, value))
                })
            })?;
            if attributes.len() == 1 {
                Ok(attributes.pop())
            } else {
                Ok(None)
            }
        })
    })
    .map_err(|error| usage(format!("{CA_CERT}: unreadable subject: {error}")))?;
    let unsupported = || {
        usage(format!(
            "{CA_CERT}: its subject uses an encoding berth cannot reproduce; make a new CA \
             without --reuse-ca"
        ))
    };
    let mut name = DistinguishedName::new();
    for attribute in attributes {
        let (oid, value) = attribute.ok_or_else(unsupported)?;
        let text = String::from_utf8(value.value().to_vec()).map_err(|_| unsupported())?;
        let value = match value.tag() {
            yasna::tags::TAG_UTF8STRING => DnValue::Utf8String(text),
            yasna::tags::TAG_PRINTABLESTRING => {
                DnValue::PrintableString(text.try_into().map_err(|_| unsupported())?)
            }
            yasna::tags::TAG_IA5STRING => {
                DnValue::Ia5String(text.try_into().map_err(|_| unsupported())?)
            }
            _ => return Err(unsupported()),
        };
        let components: Vec<u64> = oid.components().to_vec();
        name.push(DnType::from_oid(&components), value);
    }
    Ok(name)
}

/// Checks the new leaf as a client will: it chains to `ca.crt` (right key, right issuer name,
/// a CA that may sign, within validity) and is valid for the Service's name.
fn verify(ca_pem: &str, leaf_pem: &str, args: &Args) -> anyhow::Result<()> {
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|error| usage(format!("{CA_CERT}: not a PEM certificate: {error}")))?;
    let leaf = CertificateDer::from_pem_slice(leaf_pem.as_bytes())
        .context("the new serving certificate is not PEM")?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|error| usage(format!("{CA_CERT}: not usable as a CA: {error}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .context("cannot build a certificate verifier")?;
    let name = ServerName::try_from(format!("{}.{}.svc", args.service, args.namespace))
        .context("the service name is not a server name")?;
    verifier
        .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        .map_err(|error| {
            usage(format!(
                "the serving certificate does not verify against {}: {error} (do {CA_CERT} and \
                 {CA_KEY} belong together, and is the CA still valid?)",
                args.out.join(CA_CERT).display()
            ))
        })?;
    Ok(())
}

/// `2027-11-30T04:40:12Z`: the form the other commands print.
fn rfc3339(moment: time::OffsetDateTime) -> anyhow::Result<String> {
    let moment = chrono::DateTime::from_timestamp(moment.unix_timestamp(), 0)
        .context("the expiry is out of range")?;
    Ok(moment.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|error| {
        usage(format!(
            "--reuse-ca: cannot read {}: {error}",
            path.display()
        ))
    })
}

fn refuse_existing(dir: &Path, names: &[&str], force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    for name in names {
        let path = dir.join(name);
        if path.symlink_metadata().is_ok() {
            let hint = if *name == CA_CERT || *name == CA_KEY {
                "; --force replaces the whole set, --reuse-ca renews only tls.crt and tls.key"
            } else {
                "; --force replaces it"
            };
            return Err(usage(format!("{} already exists{hint}", path.display())));
        }
    }
    Ok(())
}

/// Writes every file to a temporary name in `dir` (keys 0600 from creation), syncs them, and
/// only then renames them into place; on any failure the temporary files are removed and
/// nothing has been replaced. Returns the paths written.
fn write_set(dir: &Path, files: &[(&str, &str, bool)]) -> anyhow::Result<Vec<PathBuf>> {
    let mut temporary = Vec::new();
    let result = (|| {
        for (name, contents, secret) in files {
            let path = dir.join(format!(".{name}.{}.tmp", std::process::id()));
            temporary.push(path.clone());
            write_new(&path, contents.as_bytes(), *secret)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    })();
    if let Err(error) = result {
        for path in &temporary {
            let _ = std::fs::remove_file(path);
        }
        return Err(error);
    }
    let mut written = Vec::new();
    for (index, ((name, _, _), from)) in files.iter().zip(&temporary).enumerate() {
        let to = dir.join(name);
        if let Err(error) = std::fs::rename(from, &to) {
            for path in &temporary[index..] {
                let _ = std::fs::remove_file(path);
            }
            return Err(anyhow::Error::new(error).context(format!(
                "cannot move {} to {}",
                from.display(),
                to.display()
            )));
        }
        written.push(to);
    }
    if let Ok(directory) = std::fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(written)
}

fn write_new(path: &Path, contents: &[u8], secret: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
