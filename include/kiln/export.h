#pragma once

// Symbols are hidden by default (-fvisibility=hidden); KILN_API marks the public ones.
// It matters for a .so loaded beside libtorch, which carries its own copies of many libraries.
#if defined(_WIN32)
#define KILN_API __declspec(dllexport)
#else
#define KILN_API [[gnu::visibility("default")]]
#endif
