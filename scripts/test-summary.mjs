// Prints vitest's JSON report as one plain closing line, "N passed, N failed",
// so whoever reads the log (a person or a CI parser) gets the count at a glance.
import { readFileSync } from 'node:fs';

const report = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const skipped = report.numPendingTests + report.numTodoTests;
console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`);
