// S3 credentials by the AWS conventions, resolved in the AWS CLI's order:
//   1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
//   2. the shared credentials file: AWS_SHARED_CREDENTIALS_FILE, else
//      ~/.aws/credentials, section [AWS_PROFILE] (default "default") with
//      aws_access_key_id, aws_secret_access_key, aws_session_token.
// No instance metadata, no SSO, no config-file profiles ("[profile x]" is
// ~/.aws/config's syntax, not the credentials file's).
// Secrets never appear in a Status message or a log line; `source` says where
// the keys came from, for messages.
// Thread-safety: pure functions over the given environment lookup.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ledgerkeep::s3 {

struct S3Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: none
  // "the environment (AWS_ACCESS_KEY_ID)" or "profile 'x' of <file>".
  std::string source;
};

// How the resolution reads the environment: a seam so tests need not set the
// process's environment. nullopt: not set.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
// getenv(3), with empty values treated as unset.
EnvLookup ProcessEnv();

// The credentials by the order above. InvalidArgument when only one of the
// key pair is set in the environment, when the file has no such profile
// (naming the file and the profile), or a profile lacks a key; NotFound when
// neither the environment nor a credentials file gives any; IOError /
// PermissionDenied naming the file when it cannot be read.
Result<S3Credentials> ResolveCredentials(const EnvLookup& env);

// The profile `profile` of a credentials file's text (`file` only names it
// in messages). INI: "[name]" sections, "key = value" lines, '#' and ';'
// comment lines; keys are case-insensitive, values trimmed. InvalidArgument
// with the file, line number and reason on malformed lines, a missing
// profile or missing keys.
Result<S3Credentials> ParseCredentialsFile(std::string_view text, std::string_view file,
                                           std::string_view profile);

}  // namespace ledgerkeep::s3
