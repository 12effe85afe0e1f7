// The page cache as the tests see it: how much of a file is resident.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace ledgerkeep::test {

// Pages of `path` in the page cache (mincore over a read-only mapping,
// which reads nothing); 0 for a missing or empty file.
inline size_t ResidentPages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st {};
  size_t resident = 0;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    const size_t len = static_cast<size_t>(st.st_size);
    void* map = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
    if (map != MAP_FAILED) {
      const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
      std::vector<unsigned char> vec((len + page - 1) / page);
      if (::mincore(map, len, vec.data()) == 0) {
        for (unsigned char v : vec) resident += v & 1;
      }
      ::munmap(map, len);
    }
  }
  ::close(fd);
  return resident;
}

}  // namespace ledgerkeep::test
