#ifndef DOORSTEP_CSPAWN_H
#define DOORSTEP_CSPAWN_H

#include <spawn.h>

// GNU extensions of posix_spawn that Swift's Glibc module does not show (it is imported
// without _GNU_SOURCE): wrappers compiled with it. Each returns what the wrapped call does.

/// posix_spawn_file_actions_addclosefrom_np: the child closes every descriptor >= from.
int cspawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);
/// posix_spawn_file_actions_addchdir_np: the child changes to directory path.
int cspawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);
/// pipe2(fds, O_CLOEXEC): 0, or -1 with errno.
int cspawn_pipe_cloexec(int fds[2]);

#endif
