// Moved to common/broker_client.h (the broker's workflows use it too).
#pragma once
#include "common/broker_client.h"
