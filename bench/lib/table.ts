/** Aligned text tables for the terminal and the same rows as a markdown table (for BENCHMARKS.md). */

export type Cell = string | number | null;

/** Thousands separators; 0 decimals from 100, 1 from 1, 2 below 1 (figures are noisy; more digits would lie). */
export function formatNumber(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  const decimals = abs >= 100 ? 0 : abs >= 1 || abs === 0 ? 1 : 2;
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

function text(cell: Cell): string {
  if (cell === null) return '–';
  return typeof cell === 'number' ? formatNumber(cell) : cell;
}

/** Column 0 left-aligned, the rest right-aligned. */
export function formatTable(headers: string[], rows: Cell[][]): string {
  const cells = [headers, ...rows.map((row) => row.map(text))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]): string =>
    row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(cells[0]!), rule, ...cells.slice(1).map(line)].join('\n');
}

export function markdownTable(headers: string[], rows: Cell[][]): string {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  const head = `| ${headers.map(escape).join(' | ')} |`;
  const rule = `|${headers.map((_, column) => (column === 0 ? '---' : '---:')).join('|')}|`;
  return [head, rule, ...rows.map((row) => `| ${row.map((cell) => escape(text(cell))).join(' | ')} |`)].join('\n');
}
