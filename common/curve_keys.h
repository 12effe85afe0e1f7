// CURVE key pairs (Z85 text, 40 characters each) and their key files.
//
// A key file is TOML: `name`, `public_key` and (secret files only)
// `secret_key`. `<name>.key` holds both and is written mode 0600;
// `<name>.pub` holds the public key only. Files are published crash-safely
// (tmp + fsync + rename + fsync dir), so a crash never leaves half a key.
#pragma once

#include <string>

#include "common/status.h"

namespace ledgerkeep {

struct CurveKeyPair {
  std::string name;
  std::string public_z85;
  std::string secret_z85;  // empty for a public-only key
};

// A fresh key pair from libsodium (zmq_curve_keypair).
Result<CurveKeyPair> GenerateCurveKeyPair(std::string name);

// Checks that `z85` is a 40-character Z85 string decoding to 32 bytes.
Status ValidateZ85Key(const std::string& z85, const std::string& what);

// Writes `<dir>/<name>.key` (0600) and `<dir>/<name>.pub`. Refuses to
// overwrite an existing key unless `overwrite`.
Status WriteKeyFiles(const std::string& dir, const CurveKeyPair& pair, bool overwrite);

// Loads a key file; `need_secret` requires secret_key to be present and the
// file to be private: a secret key file with any group or other permission
// bit (mode & 077) is refused (InvalidArgument naming the mode and the
// chmod that fixes it), as ssh refuses such private keys.
Result<CurveKeyPair> LoadKeyFile(const std::string& path, bool need_secret);

}  // namespace ledgerkeep
