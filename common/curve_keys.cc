#include "common/curve_keys.h"

#include <sys/stat.h>
#include <zmq.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <toml++/toml.h>

#include "common/file_util.h"

namespace ledgerkeep {

Result<CurveKeyPair> GenerateCurveKeyPair(std::string name) {
  std::array<char, 41> pub{};
  std::array<char, 41> sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0) {
    return Status::Internal(std::string("zmq_curve_keypair failed (libzmq built without CURVE?): ") +
                            zmq_strerror(zmq_errno()));
  }
  return CurveKeyPair{std::move(name), std::string(pub.data(), 40), std::string(sec.data(), 40)};
}

Status ValidateZ85Key(const std::string& z85, const std::string& what) {
  if (z85.size() != 40) {
    return Status::InvalidArgument(what + " must be a 40-character Z85 CURVE key, got " +
                                   std::to_string(z85.size()) + " characters");
  }
  std::array<uint8_t, 32> bin{};
  if (zmq_z85_decode(bin.data(), z85.c_str()) == nullptr) {
    return Status::InvalidArgument(what + " is not valid Z85");
  }
  return Status::OK();
}

Status WriteKeyFiles(const std::string& dir, const CurveKeyPair& pair, bool overwrite) {
  if (pair.name.empty() || pair.name.find('/') != std::string::npos) {
    return Status::InvalidArgument("key name must be non-empty and contain no '/'");
  }
  LK_RETURN_IF_ERROR(CreateDirectories(dir, 0700));
  const std::string base = (std::filesystem::path(dir) / pair.name).string();
  std::error_code ec;  // exists() without it throws on a path too long for the OS
  if (!overwrite && std::filesystem::exists(base + ".key", ec)) {
    return Status::AlreadyExists(base + ".key exists; pass --force to replace it "
                                 "(the old key stops working wherever it is allowlisted)");
  }
  std::string pub = "# ledgerkeep CURVE public key for '" + pair.name + "'\n" +
                    "name = \"" + pair.name + "\"\npublic_key = \"" + pair.public_z85 + "\"\n";
  std::string sec = "# ledgerkeep CURVE key pair for '" + pair.name +
                    "'. SECRET: keep this file private (mode 0600).\n" + "name = \"" +
                    pair.name + "\"\npublic_key = \"" + pair.public_z85 + "\"\nsecret_key = \"" +
                    pair.secret_z85 + "\"\n";
  LK_RETURN_IF_ERROR(WriteFileAtomically(base + ".key", sec, 0600));
  return WriteFileAtomically(base + ".pub", pub, 0644);
}

Result<CurveKeyPair> LoadKeyFile(const std::string& path, bool need_secret) {
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::error_code ec;  // exists() without it throws on a path too long for the OS
    if (!std::filesystem::exists(path, ec)) {
      return Status::NotFound("key file " + path + " does not exist (create one with `ledgerkeep keygen`)");
    }
    return Status::InvalidArgument("key file " + path + " is not valid TOML: " +
                                   std::string(e.description()));
  }
  CurveKeyPair pair;
  pair.name = tbl["name"].value_or(std::string());
  pair.public_z85 = tbl["public_key"].value_or(std::string());
  pair.secret_z85 = tbl["secret_key"].value_or(std::string());
  LK_RETURN_IF_ERROR(ValidateZ85Key(pair.public_z85, "public_key in " + path));
  if (need_secret) {
    if (pair.secret_z85.empty()) {
      return Status::InvalidArgument("key file " + path +
                                     " has no secret_key (a .pub file was given where a .key file is needed)");
    }
    LK_RETURN_IF_ERROR(ValidateZ85Key(pair.secret_z85, "secret_key in " + path));
    // As ssh does with private keys: a secret others can read (or replace)
    // is not a secret, and using it silently would hide that.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "key file " + path);
    if ((st.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return Status::InvalidArgument("key file " + path + " has mode " + mode +
                                     "; it must be readable only by its owner: chmod 600 " + path);
    }
  }
  return pair;
}

}  // namespace ledgerkeep
