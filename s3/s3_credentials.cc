#include "s3/s3_credentials.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace ledgerkeep::s3 {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

Result<S3Credentials> ParseCredentialsFile(std::string_view text, std::string_view file,
                                           std::string_view profile) {
  const std::string where(file);
  S3Credentials creds;
  bool found = false;
  bool in_profile = false;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = Trim(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    const std::string at = where + ":" + std::to_string(line_no);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') {
        return Status::InvalidArgument(at + ": a section header must look like [profile-name]");
      }
      std::string_view name = Trim(line.substr(1, line.size() - 2));
      in_profile = name == profile;
      found = found || in_profile;
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return Status::InvalidArgument(at + ": expected 'key = value' or '[profile]'");
    }
    if (!in_profile) continue;
    const std::string key = Lower(Trim(line.substr(0, eq)));
    const std::string value(Trim(line.substr(eq + 1)));
    if (key == "aws_access_key_id") {
      creds.access_key_id = value;
    } else if (key == "aws_secret_access_key") {
      creds.secret_access_key = value;
    } else if (key == "aws_session_token") {
      creds.session_token = value;
    }
  }
  const std::string prof(profile);
  if (!found) {
    return Status::InvalidArgument("the credentials file " + where + " has no profile [" + prof +
                                   "]: add it, or set AWS_PROFILE to one of its profiles");
  }
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    return Status::InvalidArgument("profile [" + prof + "] of " + where +
                                   " needs both aws_access_key_id and aws_secret_access_key");
  }
  creds.source = "profile '" + prof + "' of " + where;
  return creds;
}

Result<S3Credentials> ResolveCredentials(const EnvLookup& env) {
  const auto id = env("AWS_ACCESS_KEY_ID");
  const auto secret = env("AWS_SECRET_ACCESS_KEY");
  if (id && secret) {
    S3Credentials c;
    c.access_key_id = *id;
    c.secret_access_key = *secret;
    c.session_token = env("AWS_SESSION_TOKEN").value_or("");
    c.source = "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)";
    return c;
  }
  if (id || secret) {
    return Status::InvalidArgument(std::string("only ") + (id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") +
                                   " is set in the environment: set both, or neither to use the "
                                   "credentials file");
  }
  std::string file;
  bool explicit_file = false;
  if (auto f = env("AWS_SHARED_CREDENTIALS_FILE")) {
    file = *f;
    explicit_file = true;
  } else if (auto home = env("HOME")) {
    file = *home + "/.aws/credentials";
  } else {
    return Status::NotFound(
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
        "AWS_SHARED_CREDENTIALS_FILE (HOME is not set, so ~/.aws/credentials cannot be looked at)");
  }
  const std::string profile = env("AWS_PROFILE").value_or("default");
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    if (err == ENOENT && !explicit_file && profile == "default" && !env("AWS_PROFILE")) {
      return Status::NotFound("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write " +
                              file + " (or point AWS_SHARED_CREDENTIALS_FILE at a credentials file)");
    }
    return Status::FromErrno(err, "cannot read the S3 credentials file " + file +
                                      (explicit_file ? " (AWS_SHARED_CREDENTIALS_FILE)" : ""));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IOError("cannot read the S3 credentials file " + file);
  return ParseCredentialsFile(text.str(), file, profile);
}

}  // namespace ledgerkeep::s3
