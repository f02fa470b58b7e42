// The reference backend: plain loop nests (double accumulation where it helps), one per op of
// op_table.h. It is the twin every optimised kernel is tested against (tests/backend) and a
// backend of its own (`--backend reference`) that runs whole pipelines, slowly.
#pragma once

#include "backend/backend.h"

namespace diffuse::ref {

DIFFUSE_BACKEND_OPS(DIFFUSE_DECLARE_OP)

}  // namespace diffuse::ref
