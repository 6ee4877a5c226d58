// `pbskit key create|show|import-with-master-key`: PBS encryption key files, with the wording of
// `proxmox-backup-client key`.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <string>

#include "keyfile.h"
#include "output.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/key_config.h"
#include "registry.h"

namespace pbskit::cli {
namespace {

namespace fs = std::filesystem;

// Writes a key file with mode 0600: exclusively (create) or atomically replacing (import).
Status StoreKeyFile(const std::string& path, const std::string& data, bool replace) {
  auto fail = [&](int err) {
    return Status::FromErrno(err, "Unable to store key file '" + path + "'");
  };
  std::string target = replace ? path + ".tmp_" + std::to_string(::getpid()) : path;
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (replace ? O_TRUNC : O_EXCL);
  int fd = ::open(target.c_str(), flags, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return Status::AlreadyExists("Unable to store key file '" + path + "' - File exists");
    }
    return fail(errno);
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(target.c_str());
      return fail(err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(target.c_str());
    return fail(err);
  }
  if (replace && ::rename(target.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(target.c_str());
    return fail(err);
  }
  return Status::OK();
}

// Rust's `{:?}` of a path: quoted, with `"` and `\` escaped (what PBS puts into KeyInfo.path).
std::string DebugQuoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

// PBS's render_epoch: strftime_local("%c").
std::string RenderEpoch(const boost::json::value& v, const boost::json::object&) {
  if (!v.is_int64()) return v.is_null() ? "" : boost::json::serialize(v);
  std::time_t t = static_cast<std::time_t>(v.get_int64());
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[128];
  if (std::strftime(buf, sizeof buf, "%c", &tm) == 0) return std::to_string(v.get_int64());
  return buf;
}

int Fail(const Status& st) { return ReportError(st, ExitCodeFor(st)); }

int CreateKey(const std::string& path, const std::string& kdf_name, const std::string& hint) {
  auto kdf = ParseKdf(kdf_name);
  if (!kdf.ok()) return Fail(kdf.status());
  if (*kdf == Kdf::kNone && !hint.empty()) {
    return Fail(Status::InvalidArgument("password hint not allowed for Kdf::None"));
  }
  if (fs::exists(path)) {
    return Fail(Status::AlreadyExists("Unable to store key file '" + path + "' - File exists"));
  }
  std::string password;
  if (*kdf != Kdf::kNone) {
    auto pw = ReadPassword("Encryption Key Password: ", /*confirm=*/true);
    if (!pw.ok()) return Fail(pw.status());
    password = std::move(pw).value();
  }
  std::array<uint8_t, 32> key;
  RandomBytes(key);
  auto kc = KeyConfig::Create(key, *kdf, password);
  if (!kc.ok()) return Fail(kc.status());
  if (!hint.empty()) kc->hint = hint;
  Status st = StoreKeyFile(path, kc->ToJson(), /*replace=*/false);
  if (!st.ok()) return Fail(st);
  return 0;
}

int ShowKey(const GlobalOptions& g, const std::string& path) {
  auto kc = LoadKeyConfig(path);
  if (!kc.ok()) return Fail(kc.status());
  boost::json::object info;
  info["path"] = DebugQuoted(path);
  info["kdf"] = KdfName(kc->kdf);
  auto created = Rfc3339ToEpoch(kc->created);
  auto modified = Rfc3339ToEpoch(kc->modified);
  if (!created.ok()) return Fail(created.status().WithContext("'" + path + "'"));
  if (!modified.ok()) return Fail(modified.status().WithContext("'" + path + "'"));
  info["created"] = *created;
  info["modified"] = *modified;
  if (kc->fingerprint) info["fingerprint"] = *kc->fingerprint;
  if (kc->hint) info["hint"] = *kc->hint;
  std::vector<Column> rows = {
      {"path", "", false, nullptr},        {"kdf", "", false, nullptr},
      {"created", "", false, RenderEpoch}, {"modified", "", false, RenderEpoch},
      {"fingerprint", "", false, nullptr}, {"hint", "", false, nullptr},
  };
  return PrintRecord(g, info, rows);
}

// The RSA payload: from a snapshot directory's rsa-encrypted.key.blob, a blob file, or a file
// holding the bare RSA ciphertext.
Result<std::vector<uint8_t>> ReadEncryptedKey(const std::string& input) {
  std::string path = input;
  if (fs::is_directory(path)) path = (fs::path(path) / "rsa-encrypted.key.blob").string();
  PBSKIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  std::vector<uint8_t> raw(text.begin(), text.end());
  if (raw.size() >= 8 && std::memcmp(raw.data(), kUncompressedBlobMagic.data(), 8) == 0) {
    auto blob = DataBlob::FromRaw(std::move(raw));
    if (!blob.ok()) return blob.status().WithContext("'" + path + "'");
    auto payload = blob->Decode(nullptr);
    if (!payload.ok()) return payload.status().WithContext("'" + path + "'");
    return std::move(payload).value();
  }
  return raw;
}

int ImportWithMasterKey(const std::string& input, const std::string& master_keyfile,
                        const std::string& out_path, const std::string& kdf_name,
                        const std::string& hint) {
  auto kdf = ParseKdf(kdf_name);
  if (!kdf.ok()) return Fail(kdf.status());
  if (*kdf == Kdf::kNone && !hint.empty()) {
    return Fail(Status::InvalidArgument("password hint not allowed for Kdf::None"));
  }
  auto payload = ReadEncryptedKey(input);
  if (!payload.ok()) return Fail(payload.status());
  auto pem = ReadTextFile(master_keyfile);
  if (!pem.ok()) return Fail(pem.status());
  auto pem_password = ReadPasswordFrom({"PBS_MASTER_KEY_PASSWORD", "PBS_ENCRYPTION_PASSWORD"},
                                       "Master Key Password: ", /*confirm=*/false);
  if (!pem_password.ok()) return Fail(pem_password.status());
  auto wrapped = RsaDecryptKeyConfig(*pem, *pem_password, *payload);
  if (!wrapped.ok()) return Fail(wrapped.status());
  auto key = wrapped->Decrypt("");
  if (!key.ok()) return Fail(key.status());

  std::string password;
  if (*kdf != Kdf::kNone) {
    auto pw = ReadPassword("New Password: ", /*confirm=*/true);
    if (!pw.ok()) return Fail(pw.status());
    password = std::move(pw).value();
  }
  auto kc = KeyConfig::Create(*key, *kdf, password);
  if (!kc.ok()) return Fail(kc.status());
  kc->created = wrapped->created;  // keep the original creation time, as PBS does
  if (!hint.empty()) kc->hint = hint;
  Status st = StoreKeyFile(out_path, kc->ToJson(), /*replace=*/true);
  if (!st.ok()) return Fail(st);
  return 0;
}

int CreateMasterKey(const std::string& dir) {
  auto password = ReadPasswordFrom({"PBS_MASTER_KEY_PASSWORD"}, "Master Key Password: ",
                                   /*confirm=*/true);
  if (!password.ok()) return Fail(password.status());
  std::cerr << "Generating 4096-bit RSA key.." << std::endl;
  auto pair = GenerateMasterKey(4096, *password);
  if (!pair.ok()) return Fail(pair.status());
  auto info = DescribeRsaPublicKey(pair->public_pem);
  if (!info.ok()) return Fail(info.status());
  std::cerr << "Modulus: " << info->modulus << "\n"
            << "Exponent: " << info->exponent << "\n\n";
  const std::string pub = (fs::path(dir) / "master-public.pem").string();
  const std::string priv = (fs::path(dir) / "master-private.pem").string();
  std::cerr << "Writing public master key to " << pub << "\n";
  Status st = StoreKeyFile(pub, pair->public_pem, /*replace=*/true);
  if (!st.ok()) return Fail(st);
  std::cerr << "Writing private master key to " << priv << "\n";
  st = StoreKeyFile(priv, pair->private_pem, /*replace=*/true);
  if (!st.ok()) return Fail(st);
  return 0;
}

int ShowMasterPubkey(const GlobalOptions& g, const std::string& path) {
  auto pem = ReadTextFile(path);
  if (!pem.ok()) return Fail(pem.status());
  auto info = DescribeRsaPublicKey(*pem);
  if (!info.ok()) return Fail(info.status().WithContext("'" + path + "'"));
  std::error_code ec;
  fs::path canonical = fs::canonical(path, ec);
  boost::json::object out;
  out["path"] = ec ? path : canonical.string();
  out["exponent"] = info->exponent;
  out["modulus"] = info->modulus;
  out["length"] = info->length;
  std::vector<Column> rows = {{"path", "", false, nullptr},
                              {"modulus", "", false, nullptr},
                              {"exponent", "", false, nullptr},
                              {"length", "", false, nullptr}};
  return PrintRecord(g, out, rows);
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* key = app.add_subcommand("key", "Manage encryption keys (PBS key file format)");
  key->require_subcommand(1);

  struct Args {
    std::string path, kdf = "scrypt", hint, input, master_keyfile, dir = ".";
  };
  static Args args;

  auto* create = key->add_subcommand("create", "Create a new encryption key.");
  create->add_option("path", args.path, "Output file (never overwritten).")->required();
  create
      ->add_option("--kdf", args.kdf,
                   "Key derivation function for password protected encryption keys.")
      ->check(CLI::IsMember({"none", "scrypt", "pbkdf2"}))
      ->capture_default_str();
  create->add_option("--hint", args.hint, "Password hint.");
  create->footer(
      "The password is read from PBS_ENCRYPTION_PASSWORD (or _FD, _FILE, _CMD) if set,\n"
      "otherwise asked twice on the terminal.");
  create->callback([&g] { g.exit_code = CreateKey(args.path, args.kdf, args.hint); });

  auto* show = key->add_subcommand("show", "Print the encryption key's metadata.");
  show->add_option("path", args.path, "Key file.")->required();
  show->callback([&g] { g.exit_code = ShowKey(g, args.path); });

  auto* import = key->add_subcommand(
      "import-with-master-key",
      "Import an encrypted backup of an encryption key using a (private) master key.");
  import
      ->add_option("encrypted-keyfile", args.input,
                   "RSA-encrypted keyfile to import: rsa-encrypted.key.blob, the snapshot "
                   "directory holding it, or the bare RSA payload.")
      ->required();
  import->add_option("--master-keyfile", args.master_keyfile, "(Private) master key to use.")
      ->required();
  import->add_option("path", args.path, "Output file (replaced if it exists).")->required();
  import
      ->add_option("--kdf", args.kdf,
                   "Key derivation function for the imported key (default scrypt, as PBS).")
      ->check(CLI::IsMember({"none", "scrypt", "pbkdf2"}))
      ->capture_default_str();
  import->add_option("--hint", args.hint, "Password hint.");
  import->footer(
      "The master key (PEM) password is read from PBS_MASTER_KEY_PASSWORD, else from\n"
      "PBS_ENCRYPTION_PASSWORD, else asked on the terminal. With --kdf scrypt|pbkdf2 the new\n"
      "key password is read from PBS_ENCRYPTION_PASSWORD or asked twice on the terminal.");
  auto* master = key->add_subcommand(
      "create-master-key",
      "Create an RSA public/private key pair used to put an encrypted version of the symmetric "
      "backup encryption key onto the backup server along with each backup.");
  master
      ->add_option("--output-dir", args.dir,
                   "Directory for master-public.pem and master-private.pem (replaced).")
      ->capture_default_str();
  master->footer(
      "The private key password is read from PBS_MASTER_KEY_PASSWORD (or _FD, _FILE, _CMD),\n"
      "otherwise asked twice on the terminal.");
  master->callback([&g] { g.exit_code = CreateMasterKey(args.dir); });

  auto* show_master =
      key->add_subcommand("show-master-pubkey", "List information about master key");
  show_master->add_option("path", args.path, "Path to the PEM formatted RSA public key.")
      ->required();
  show_master->callback([&g] { g.exit_code = ShowMasterPubkey(g, args.path); });

  import->callback([&g] {
    g.exit_code = ImportWithMasterKey(args.input, args.master_keyfile, args.path, args.kdf,
                                      args.hint);
});
}  // namespace

}  // namespace pbskit::cli
}  // namespace pbskit::cli

PBSKIT_REGISTER_COMMAND(60, pbskit::cli::Setup);
