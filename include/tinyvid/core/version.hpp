#pragma once
// tinyvid's version: the one place it is written (CMakeLists.txt reads it from here).
#define TINYVID_VERSION "0.1.0"
