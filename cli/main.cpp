// ledgerkeep: the operator CLI (see cli_app.h).
#include "cli/cli_app.h"

int main(int argc, char** argv) { return ledgerkeep::RunCli(argc, argv); }
