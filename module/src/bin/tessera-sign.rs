//! `tessera-sign`: post-quantum signing of files with keys kept in a PKCS#11 token, for teams
//! trying ML-DSA and SLH-DSA (docs/post-quantum.md, "tessera-sign").
//!
//! `keygen`, `sign` and `export-key` are a PKCS#11 client of the token's library (the `cryptoki`
//! crate, standard calls only, as any application); `verify` needs no token: it checks a
//! signature in software against a public key file. The signature file is documented in
//! `tessera_sign/format.rs` and docs/post-quantum.md.

#![forbid(unsafe_code)]

#[path = "tessera_sign/data.rs"]
mod data;
#[path = "tessera_sign/format.rs"]
mod format;
#[path = "tessera_sign/token.rs"]
mod token;
#[path = "tessera_sign/uri.rs"]
mod uri;
#[path = "tessera_sign/verify.rs"]
mod verify;

use clap::{Args, Parser, Subcommand};
use format::{KeyAlg, PublicKey, SigAlg, SignatureFile};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zeroize::Zeroizing;

type Res<T> = Result<T, String>;

#[derive(Parser, Debug)]
#[command(
    name = "tessera-sign",
    version,
    about = "Post-quantum (ML-DSA, SLH-DSA) and hybrid signing of files with keys kept in a PKCS#11 token",
    after_help = "The library: --module PATH, else a module-path in --uri, else $TESSERA_MODULE, else \
                  libtessera_pkcs11.so beside this program. The PIN: --pin-file FILE, else a pin-source or \
                  pin-value in --uri, else $TESSERA_PIN, else asked at the terminal; --pin PIN works, with a warning \
                  (other users can read a command line)."
)]
struct Cli {
    /// The PKCS#11 library to load.
    #[arg(long, global = true, value_name = "PATH")]
    module: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Default)]
struct TokenArgs {
    /// The token, by its label.
    #[arg(long, value_name = "LABEL", conflicts_with = "uri")]
    token: Option<String>,
    /// The token (and key) as a PKCS#11 URI: token, serial, manufacturer, model, slot-id, object;
    /// pin-source, pin-value, module-path in the query.
    #[arg(long, value_name = "URI")]
    uri: Option<String>,
    /// A file holding the user PIN (its first line).
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
    /// The user PIN on the command line (visible to other users: prefer the prompt,
    /// TESSERA_PIN or --pin-file).
    #[arg(long, value_name = "PIN")]
    pin: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Generate a signing key pair in the token.
    Keygen {
        #[command(flatten)]
        t: TokenArgs,
        /// The keys' label (CKA_LABEL of both halves); or `object` in --uri.
        #[arg(long, value_name = "NAME")]
        label: Option<String>,
        /// ml-dsa-44, ml-dsa-65, ml-dsa-87, slh-dsa-{sha2,shake}-{128,192,256}{s,f}, ecdsa-p256.
        #[arg(long, default_value = "ml-dsa-65")]
        alg: String,
    },
    /// Sign a file; write a detached signature file.
    ///
    /// ML-DSA keys: pure ML-DSA (CKM_ML_DSA) whatever the size: a file up to 8 MiB in one C_Sign,
    /// a larger one streamed in parts of 1 MiB (C_SignUpdate; the token computes μ as the parts
    /// come, holding no more than one). SLH-DSA keys: a file up to 8 MiB is signed with pure
    /// SLH-DSA (CKM_SLH_DSA, one C_Sign: pure SLH-DSA reads the message twice, so it cannot
    /// stream); a larger one streams through CKM_HASH_SLH_DSA_<hash> (HashSLH-DSA with the hash
    /// NIST pairs with the set: SHA-256 for sha2-128*, SHA-512 for sha2-192/256*, SHAKE128 for
    /// shake-128*, SHAKE256 for shake-192/256*). --pure or --prehash chooses for any size
    /// (--prehash with ML-DSA: CKM_HASH_ML_DSA_SHA512, HashML-DSA with SHA-512). ECDSA P-256 keys:
    /// CKM_ECDSA_SHA256, streamed. The signature file names the algorithm (pure or pre-hashed)
    /// and the pre-hash.
    ///
    /// --hybrid: a composite signature (IETF draft-ietf-lamps-pq-composite-sigs,
    /// id-MLDSA65-ECDSA-P256-SHA512) with an ML-DSA-65 key (--key) and an ECDSA P-256 key
    /// (--ec-key, default the same name): the file is hashed with SHA-512 here, and both keys sign
    /// the draft's message representative in the token.
    Sign {
        /// The file to sign.
        file: PathBuf,
        #[command(flatten)]
        t: TokenArgs,
        /// The signing key's label (default: `object` in --uri, else the token's only signing key).
        #[arg(long, value_name = "NAME")]
        key: Option<String>,
        /// The ECDSA P-256 key of a --hybrid signature (default: the --key name).
        #[arg(long, value_name = "NAME", requires = "hybrid")]
        ec_key: Option<String>,
        /// An application context (at most 255 bytes) bound into the signature.
        #[arg(long, value_name = "STR")]
        context: Option<String>,
        /// The context as hexadecimal (for one that is not text).
        #[arg(long, value_name = "HEX", conflicts_with = "context")]
        context_hex: Option<String>,
        /// A composite ML-DSA-65 + ECDSA P-256 signature.
        #[arg(long)]
        hybrid: bool,
        /// Pure ML-DSA / SLH-DSA whatever the file's size (read whole into memory).
        #[arg(long, conflicts_with_all = ["prehash", "hybrid"])]
        pure: bool,
        /// Pre-hashed, streamed ML-DSA / SLH-DSA whatever the file's size.
        #[arg(long, conflicts_with = "hybrid")]
        prehash: bool,
        /// The signature file to write.
        #[arg(short = 'o', long = "output", value_name = "FILE.sig")]
        output: PathBuf,
    },
    /// Write a key's public key as PEM SubjectPublicKeyInfo (no PIN needed).
    ExportKey {
        /// The key's label (default: `object` in --uri).
        name: Option<String>,
        #[command(flatten)]
        t: TokenArgs,
        /// The composite public key (ML-DSA-65 NAME + ECDSA P-256 --ec-key, default NAME).
        #[arg(long)]
        hybrid: bool,
        /// The ECDSA P-256 key of a --hybrid public key.
        #[arg(long, value_name = "NAME", requires = "hybrid")]
        ec_key: Option<String>,
        #[arg(short = 'o', long = "output", value_name = "key.pem")]
        output: PathBuf,
    },
    /// Verify a file's signature with a public key file, in software (no token). Exits non-zero
    /// unless the signature verifies and was made with the expected context.
    Verify {
        file: PathBuf,
        signature: PathBuf,
        /// The signer's public key (PEM or DER SubjectPublicKeyInfo).
        #[arg(long, value_name = "key.pem")]
        pubkey: PathBuf,
        /// The context the signature must have been made with (default: none). A signature
        /// made for another context is refused, even though it verifies for that one.
        #[arg(long, value_name = "STR")]
        context: Option<String>,
        /// The expected context as hexadecimal.
        #[arg(long, value_name = "HEX", conflicts_with = "context")]
        context_hex: Option<String>,
    },
}

/// The library to load.
fn library(cli: &Cli, u: &Option<uri::Uri>) -> Res<PathBuf> {
    if let Some(p) = &cli.module {
        return Ok(p.clone());
    }
    if let Some(p) = u.as_ref().and_then(|u| u.module_path.clone()) {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("TESSERA_MODULE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's own path: {e}"))?;
    let p = exe.parent().map(|d| d.join("libtessera_pkcs11.so")).unwrap_or_default();
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("no PKCS#11 library: {} does not exist; name one with --module PATH", p.display()))
    }
}

fn read_pin_file(p: &Path) -> Res<Zeroizing<String>> {
    let s = Zeroizing::new(
        std::fs::read_to_string(p).map_err(|e| format!("cannot read the PIN file {}: {e}", p.display()))?,
    );
    Ok(Zeroizing::new(s.lines().next().unwrap_or("").to_string()))
}

const PIN_WARNING: &str = "WARNING: a PIN on the command line can be read by other users of this machine; \
                           prefer the prompt, TESSERA_PIN or --pin-file";

fn pin(t: &TokenArgs, u: &Option<uri::Uri>, token_label: &str) -> Res<Zeroizing<String>> {
    if let Some(p) = &t.pin {
        eprintln!("{PIN_WARNING}");
        return Ok(Zeroizing::new(p.clone()));
    }
    if let Some(f) = &t.pin_file {
        return read_pin_file(f);
    }
    if let Some(u) = u {
        if let Some(src) = &u.pin_source {
            return read_pin_file(Path::new(src.strip_prefix("file:").unwrap_or(src)));
        }
        if let Some(v) = &u.pin_value {
            eprintln!("{PIN_WARNING}");
            return Ok(Zeroizing::new(v.clone()));
        }
    }
    if let Some(p) = std::env::var_os("TESSERA_PIN") {
        return p.into_string().map(Zeroizing::new).map_err(|_| "TESSERA_PIN is not UTF-8".into());
    }
    let p = rpassword::prompt_password(format!("User PIN for token {token_label:?}: "))
        .map_err(|e| format!("no PIN (--pin-file, TESSERA_PIN, or a terminal to ask on): {e}"))?;
    Ok(Zeroizing::new(p))
}

/// The URI, the library and the token of a command that uses one.
struct Opened {
    p: cryptoki::context::Pkcs11,
    slot: cryptoki::slot::Slot,
    label: String,
    uri: Option<uri::Uri>,
}

fn open(cli: &Cli, t: &TokenArgs) -> Res<Opened> {
    let u = t.uri.as_deref().map(uri::parse).transpose()?;
    let p = token::load(&library(cli, &u)?)?;
    let sel = match &u {
        Some(u) => token::Selector {
            label: u.token.clone(),
            serial: u.serial.clone(),
            manufacturer: u.manufacturer.clone(),
            model: u.model.clone(),
            slot_id: u.slot_id,
        },
        None => token::Selector { label: t.token.clone(), ..Default::default() },
    };
    let (slot, label) = token::find_slot(&p, &sel)?;
    Ok(Opened { p, slot, label, uri: u })
}

/// `--context STR` or `--context-hex HEX` (none: the empty context).
fn context_bytes(text: &Option<String>, hex: &Option<String>) -> Res<Vec<u8>> {
    let ctx = match (text, hex) {
        (Some(t), _) => t.as_bytes().to_vec(),
        (None, Some(h)) => {
            let h = h.as_bytes();
            if h.len() % 2 != 0 {
                return Err("--context-hex takes an even number of hexadecimal digits".into());
            }
            h.chunks(2)
                .map(|c| std::str::from_utf8(c).ok().and_then(|c| u8::from_str_radix(c, 16).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or("--context-hex takes hexadecimal digits")?
        }
        (None, None) => Vec::new(),
    };
    if ctx.len() > 255 {
        return Err("the context is longer than 255 bytes".into());
    }
    Ok(ctx)
}

/// Whether two paths name one existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn write_file(path: &Path, text: &str) -> Res<()> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn run(cli: &Cli) -> Res<()> {
    match &cli.cmd {
        Cmd::Keygen { t, label, alg } => {
            let alg = KeyAlg::parse(alg)?;
            let o = open(cli, t)?;
            let label = label
                .clone()
                .or_else(|| o.uri.as_ref().and_then(|u| u.object.clone()))
                .ok_or("name the key with --label NAME")?;
            let pin = pin(t, &o.uri, &o.label)?;
            let s = o.p.open_rw_session(o.slot).map_err(|e| format!("C_OpenSession: {e}"))?;
            token::login(&s, &pin)?;
            token::keygen(&o.p, o.slot, &s, alg, &label)?;
            println!("Generated the {} key pair {label:?} in token {:?}.", alg.name(), o.label);
            Ok(())
        }
        Cmd::Sign { file, t, key, ec_key, context, context_hex, hybrid, pure, prehash, output } => {
            let ctx = &context_bytes(context, context_hex)?;
            if same_file(file, output) {
                return Err("the signature would overwrite the file it signs: choose another -o".into());
            }
            let o = open(cli, t)?;
            let name = key.clone().or_else(|| o.uri.as_ref().and_then(|u| u.object.clone()));
            let pin = pin(t, &o.uri, &o.label)?;
            let s = o.p.open_ro_session(o.slot).map_err(|e| format!("C_OpenSession: {e}"))?;
            token::login(&s, &pin)?;
            // The public key the signature must verify under: the token's public key object(s)
            // of the same name and kind, when there are (a key imported without one has none).
            let (alg, sig, public) = if *hybrid {
                let ml = token::private_key(&s, name.as_deref(), Some(KeyAlg::MlDsa(format::MlDsa::P65)))?;
                let ec_name = ec_key.clone().unwrap_or_else(|| ml.label.clone());
                let ec = token::private_key(&s, Some(&ec_name), Some(KeyAlg::EcdsaP256))?;
                let sig = token::sign_composite(&o.p, o.slot, &s, &ml, &ec, ctx, file)?;
                let public = match (
                    token::find_public_key(&s, &ml.label, ml.alg)?,
                    token::find_public_key(&s, &ec.label, ec.alg)?,
                ) {
                    (Some(m), Some(e)) => Some(PublicKey { alg: KeyAlg::Composite, raw: [m.raw, e.raw].concat() }),
                    _ => None,
                };
                (SigAlg::Composite, sig, public)
            } else {
                let k = token::private_key(&s, name.as_deref(), None)?;
                let v = match (pure, prehash) {
                    (true, _) => token::Variant::Pure,
                    (_, true) => token::Variant::PreHash,
                    _ => token::Variant::Auto,
                };
                let (alg, sig) = token::sign_file(&o.p, o.slot, &s, &k, ctx, v, file)?;
                (alg, sig, token::find_public_key(&s, &k.label, k.alg)?)
            };
            let f = SignatureFile::new(alg, ctx, sig)?;
            // A signature the token made is checked before it is written, as a verifier will check
            // it: a fault in the token, or a file changed while it was read, writes nothing.
            match &public {
                Some(pk) => verify::verify(file, &f, alg, pk).map_err(|e| {
                    format!("the new signature does not verify under the key's public key ({e}); nothing written")
                })?,
                None => eprintln!("NOTE: no public key of that name in the token: the signature was not checked"),
            }
            write_file(output, &f.pem()?)?;
            let parts = match alg {
                SigAlg::MlDsa(_) if std::fs::metadata(file).is_ok_and(|m| m.len() > token::PURE_MAX) => {
                    ", streamed in parts of 1 MiB"
                }
                SigAlg::MlDsa(_) => ", the whole file in one part",
                _ => "",
            };
            eprintln!("Signed {} with {}{parts}: {}", file.display(), alg.describe(), output.display());
            Ok(())
        }
        Cmd::ExportKey { name, t, hybrid, ec_key, output } => {
            let o = open(cli, t)?;
            let name = name
                .clone()
                .or_else(|| o.uri.as_ref().and_then(|u| u.object.clone()))
                .ok_or("name the key (export-key NAME)")?;
            // Public keys are public objects: no login.
            let s = o.p.open_ro_session(o.slot).map_err(|e| format!("C_OpenSession: {e}"))?;
            let pk = if *hybrid {
                let ml = token::public_key(&s, &name, Some(KeyAlg::MlDsa(format::MlDsa::P65)))?;
                let ec = token::public_key(&s, ec_key.as_deref().unwrap_or(&name), Some(KeyAlg::EcdsaP256))?;
                PublicKey { alg: KeyAlg::Composite, raw: [ml.raw, ec.raw].concat() }
            } else {
                token::public_key(&s, &name, None)?
            };
            write_file(output, &pk.to_pem()?)?;
            eprintln!("Wrote the {} public key {name:?} to {}", pk.alg.name(), output.display());
            Ok(())
        }
        Cmd::Verify { file, signature, pubkey, context, context_hex } => {
            let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
            let key = PublicKey::parse(&read(pubkey)?)?;
            let (f, alg) = SignatureFile::parse(&read(signature)?)?;
            let ctx = f.context.as_bytes();
            let expected = &context_bytes(context, context_hex)?[..];
            // The context is what binds a signature to its use: the one the file carries is
            // taken only when it is the one the verifier expects.
            if ctx != expected {
                return Err(format!(
                    "the signature was made with the context {:?}, not {:?} (give the expected one with --context)",
                    String::from_utf8_lossy(ctx),
                    String::from_utf8_lossy(expected)
                ));
            }
            verify::verify(file, &f, alg, &key)?;
            let ctx_note =
                if ctx.is_empty() { String::new() } else { format!(", context {:?}", String::from_utf8_lossy(ctx)) };
            println!("Signature OK: {}{ctx_note}", alg.describe());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}
