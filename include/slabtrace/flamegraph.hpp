#pragma once
// A self-contained SVG flame graph of outstanding slab memory: root "all", then
// the cgroup, then the kernel stack outermost first; widths proportional to
// bytes, colour by cache, a tooltip (<title>) with exact figures on every frame.
// No scripts, no Perl: any browser or `rsvg-convert` shows it.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace slabtrace::output {

// One kernel stack that holds outstanding objects of one cache.
struct FlameStack {
  // Outermost first. The first element is the cgroup label, e.g.
  // "cgroup /kubepods/burstable/pod1f0c.../cri-containerd-ab12...".
  std::vector<std::string> frames;
  std::string cache;        // "skbuff_head_cache"
  std::uint64_t bytes = 0;  // outstanding bytes
  std::uint64_t count = 0;  // outstanding objects
};

struct FlameOptions {
  std::string title = "slabtrace: outstanding slab memory by kernel stack";
  unsigned width = 1200;         // px
  unsigned frame_height = 16;    // px per stack level
  double min_frame_width = 0.1;  // px; narrower frames (and all above them) are not drawn
};

// Stacks with identical prefixes merge into one frame; children sit left to
// right by bytes, largest first. Stacks with 0 bytes are left out.
void write_flamegraph_svg(const std::vector<FlameStack>& stacks, std::ostream& out, const FlameOptions& options = {});

}  // namespace slabtrace::output
