// ledgerkeep: the operator CLI (see cli_app.h).
#include "cli/cli_app.h"

#include <sys/stat.h>

int main(int argc, char** argv) {
  // What the CLI writes (keys, a restore --to-dir) is private to its owner.
  ::umask(077);
  return ledgerkeep::RunCli(argc, argv);
}
