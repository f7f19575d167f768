// Compiled by the layering.* tests with one layer's include path: includes LAYERING_HEADER.
// A header of a higher layer must not be found from a lower one.
#include LAYERING_HEADER

int main() { return 0; }
