// The SDK is header-only; this unit pins the manifest layout the host reads, so an accidental
// change to the header fails the build instead of corrupting plugins.
#include "space_plugin.h"

_Static_assert(sizeof(space_entry) == 3 * sizeof(void *), "space_entry layout changed");
_Static_assert(offsetof(space_plugin, name) == 8, "space_plugin layout changed");
_Static_assert(offsetof(space_plugin, entries) == 8 + 2 * sizeof(void *), "space_plugin layout changed");
_Static_assert(sizeof(space_plugin) == 8 + 6 * sizeof(void *), "space_plugin layout changed");
