/* trivial: does nothing for 200 ms (long enough for a profiler to start), then exits.
 * The harness reads its max RSS from wait4. */
#include <unistd.h>
int main(void) { usleep(200 * 1000); return 0; }
